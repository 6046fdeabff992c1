"""The training step's speed settings (ltxic.training.speed): per-block recompute, auto recompute, compiled blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from ltxic.training.config import example_config, load_config
from ltxic.training.trainer import train


def _config(tmp_path, data, name: str, steps: int = 4, **optimization):
    cfg = load_config(example_config("tiny_cpu"), check_files=False).model_dump(mode="json")
    cfg["dataset"].update(dataset_file=str(data), resolution_buckets=["64x64x17"], cache_dir=str(tmp_path / "cache"))
    cfg["optimization"].update(steps=steps, warmup_steps=1, **optimization)
    cfg["lora"].update(rank=4, alpha=4)
    cfg["validation"].update(interval=0)
    cfg["output"].update(dir=str(tmp_path / name), checkpoint_interval=steps)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _lora(result) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(result.lora_path))


def _stages(result) -> dict:
    return json.loads((result.output_dir / "stages.json").read_text())


def test_recomputing_some_or_all_blocks_learns_the_same_lora(tmp_path, tiny_kit) -> None:
    settings = {"none": False, "one": 1, "all": True}  # (a dict keyed by True and 1 would merge them)
    runs = {name: train(_config(tmp_path, tiny_kit, f"gc_{name}", gradient_checkpointing=value), progress=False)
            for name, value in settings.items()}
    blocks = {name: _stages(r)["recompute_blocks"] for name, r in runs.items()}
    assert blocks["none"] == 0 and blocks["one"] == 1 and blocks["all"] >= 2, blocks
    reference = _lora(runs["none"])
    for name in ("one", "all"):
        assert runs[name].losses == runs["none"].losses
        for key, tensor in _lora(runs[name]).items():
            torch.testing.assert_close(tensor, reference[key], rtol=0, atol=0)


class _CappedMemory:
    """A strategy on a card that cannot hold the activations of more than ``stored`` blocks: a step with fewer
    blocks recomputed runs out of memory, as torch does on a GPU."""

    def __init__(self, inner, stored: int) -> None:
        self.inner, self.stored, self.refused = inner, stored, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, model, batch, generator):
        from ltxic.training.speed import block_count

        if block_count(model) - model.ltxic_recompute_blocks > self.stored:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated card)")
        return self.inner.loss(model, batch, generator)


def test_auto_recompute_climbs_until_the_step_fits_and_learns_the_same(tmp_path, tiny_kit, monkeypatch, capfd) -> None:
    import ltxic.models.strategies as strategies
    from ltxic.training.speed import block_count

    pinned = train(_config(tmp_path, tiny_kit, "pinned", gradient_checkpointing=True), progress=False)
    total = _stages(pinned)["recompute_blocks"]
    assert total >= 2
    capped: list[_CappedMemory] = []
    real = strategies.get_strategy

    def capped_strategy(*args, **kwargs):
        capped.append(_CappedMemory(real(*args, **kwargs), stored=0))
        return capped[-1]

    monkeypatch.setattr(strategies, "get_strategy", capped_strategy)
    auto = train(_config(tmp_path, tiny_kit, "auto", gradient_checkpointing="auto"), progress=False)
    assert _stages(auto)["recompute_blocks"] == total
    assert capped[0].refused >= 1
    assert "now recomputes" in capfd.readouterr().err
    assert auto.losses == pinned.losses  # the retried step ran from the same random state
    for key, tensor in _lora(auto).items():
        torch.testing.assert_close(tensor, _lora(pinned)[key], rtol=0, atol=0)
    assert block_count(torch.nn.Linear(1, 1)) == 1


def test_an_oom_with_everything_recomputed_names_the_settings(tmp_path, tiny_kit, monkeypatch) -> None:
    import ltxic.models.strategies as strategies
    from ltxic.training.loop import TrainingOOMError

    real = strategies.get_strategy
    monkeypatch.setattr(strategies, "get_strategy", lambda *a, **k: _CappedMemory(real(*a, **k), stored=-1))
    with pytest.raises(TrainingOOMError, match="model.fp8: true"):
        train(_config(tmp_path, tiny_kit, "never", gradient_checkpointing="auto"), progress=False)


def test_gradient_checkpointing_setting_is_checked(tmp_path, tiny_kit) -> None:
    with pytest.raises(Exception, match="optimization.gradient_checkpointing"):
        _config(tmp_path, tiny_kit, "bad", gradient_checkpointing=-2)
    assert _config(tmp_path, tiny_kit, "ok", gradient_checkpointing="auto").optimization.gradient_checkpointing == "auto"


def test_an_all_ones_text_mask_is_dropped_and_a_padded_one_kept() -> None:
    from ltxic.models.strategies import EncodedSample, collate

    def sample(mask):
        return EncodedSample(video_latent=torch.zeros(4, 2, 2, 2), video_context=torch.zeros(3, 8),
                             context_mask=torch.tensor(mask, dtype=torch.bool))

    assert collate([sample([1, 1, 1]), sample([1, 1, 1])]).context_mask is None
    kept = collate([sample([1, 1, 0]), sample([1, 1, 1])]).context_mask
    assert kept is not None and kept.tolist() == [[True, True, False], [True, True, True]]


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones(tmp_path, tiny_kit) -> None:
    """``optimization.compile: true`` (torch.compile of each block; inductor's C++ backend on the CPU)."""
    eager = train(_config(tmp_path, tiny_kit, "eager", steps=3), progress=False)
    compiled = train(_config(tmp_path, tiny_kit, "compiled", steps=3, compile=True), progress=False)
    assert _stages(compiled)["compiled"] is True
    torch.testing.assert_close(torch.tensor(compiled.losses), torch.tensor(eager.losses), rtol=1e-4, atol=1e-6)
    # Adam moves each weight by about the learning rate per step whatever the gradient's size, so a rounding
    # difference in a near-zero gradient can move one element by up to steps x lr: bound that, and require that
    # almost every element agrees closely
    lr = load_config(example_config("tiny_cpu"), check_files=False).optimization.learning_rate
    reference = _lora(eager)
    for key, tensor in _lora(compiled).items():
        diff = (tensor.float() - reference[key].float()).abs()
        assert diff.max() <= 3 * lr * 1.01, (key, float(diff.max()))
        far = int((diff > 1e-5 + 1e-3 * reference[key].float().abs()).sum())
        assert far <= max(1, diff.numel() // 100), (key, far, diff.numel())


@pytest.mark.slow
def test_a_lower_activation_memory_budget_keeps_less_for_backward() -> None:
    import trainer_standins as standins

    import ltxic
    from ltxic.models.lora import inject_lora
    from ltxic.training.speed import compile_blocks
    from ltxic.models.strategies import collate

    def kept_bytes(budget: float) -> tuple[int, float, dict[str, torch.Tensor]]:
        model = ltxic.build_transformer("tiny", seed=0)
        inject_lora(model, standins.LORA)
        model.train()
        compile_blocks(model, memory_budget=budget)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        kept: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            if t.untyped_storage().data_ptr() not in params:
                kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = standins.strategy().loss(model, collate(standins.make_samples()[:2]),
                                               torch.Generator().manual_seed(0))
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        return sum(kept.values()), float(loss), grads

    try:
        full, loss_full, grads_full = kept_bytes(1.0)
        fifth, loss_fifth, grads_fifth = kept_bytes(0.2)
    finally:  # the budget is process-wide: later tests compile under the default
        from torch._functorch import config as functorch_config

        functorch_config.activation_memory_budget = 1.0
        torch._dynamo.reset()
    assert fifth < 0.85 * full, (fifth, full)
    # selective recompute changes what is stored, not what is computed
    assert loss_fifth == pytest.approx(loss_full, rel=1e-5)
    for name, grad in grads_full.items():
        torch.testing.assert_close(grads_fifth[name], grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU side of compile: auto")
def test_compile_auto_leaves_blocks_eager_on_a_cpu(tmp_path, tiny_kit) -> None:
    result = train(_config(tmp_path, tiny_kit, "auto", steps=2, compile="auto"), progress=False)
    assert _stages(result)["compiled"] is False


def test_the_speed_plot_shows_the_committed_h200_results() -> None:
    """Lesson 04's bars, on the committed call 11 results: the plain loop grey, the trainer blue, the H100's memory
    line from the one place the course reads it."""
    import matplotlib

    from ltxic.course.facts import h100_memory_gib
    from ltxic.training.speed import plot_step_speed

    matplotlib.use("Agg")
    folder = Path(__file__).parents[1] / "benchmarks" / "results" / "train_speed" / "call11"
    rows = {label: json.loads((folder / f"{name}.json").read_text()) for label, name in
            (("plain, run 11", "plain"), ("ltx23_h100, run 11", "fast"))}
    fig = plot_step_speed(rows, cap_gib=h100_memory_gib())
    ax_time, ax_mem = fig.axes
    assert [b.get_height() for b in ax_time.patches] == [r["step_median_s"] for r in rows.values()]
    assert [b.get_height() for b in ax_mem.patches] == [r["peak_gib"] for r in rows.values()]
    assert [matplotlib.colors.to_hex(b.get_facecolor()) for b in ax_time.patches] == ["#808080", "#1f77b4"]
    assert [line.get_ydata()[0] for line in ax_mem.lines] == [h100_memory_gib()]
    assert f"{h100_memory_gib():.1f} GiB" in ax_mem.get_title()
    assert [t.get_text() for t in ax_time.get_xticklabels()] == ["plain\nrun 11", "ltx23_h100\nrun 11"]
