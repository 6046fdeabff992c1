"""The training loop on the tiny LTX-2 transformer: exact resume after SIGKILL, damaged checkpoints, full disk, OOM.

Real LoRA (ltxic.models.lora) and strategy (ltxic.models.strategies); samples are tensors written directly (tests/trainer_standins.py)
until the tiny codecs land.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainer_standins as standins
import ltxic
from ltxic.training import loop, trainer
from ltxic.models.lora import LoRAConfig, inject_lora, load_lora, read_lora_metadata
from ltxic.models.strategies import collate
from ltxic.io.files import DiskFullError
from ltxic.training.checkpoints import checkpoint_is_complete, latest_checkpoint, load_training_state
from ltxic.training.loop import DataOrder, TrainingError, TrainingOOMError, plot_metrics, read_metrics

TESTS = Path(__file__).parent
STEPS, INTERVAL = 12, 4
FIRST, SECOND, LAST = (f"step_{n:06d}" for n in (INTERVAL, 2 * INTERVAL, STEPS))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[float]:
    """The loss curve of an uninterrupted run."""
    out = tmp_path_factory.mktemp("ref")
    result = standins.run(out, STEPS, INTERVAL)
    assert len(result.losses) == STEPS
    assert [r["step"] for r in read_metrics(out)] == list(range(1, STEPS + 1))
    return result.losses


def test_data_order_depends_only_on_seed_and_index() -> None:
    groups = ["a", "a", "b", "b", "b", "c"]
    order = DataOrder(groups, batch_size=2, seed=3)
    assert order.batches_per_epoch == 4  # a: 1 batch, b: 2 batches, c: 1 batch
    epoch0 = [order.batch(i) for i in range(4)]
    assert sorted(i for b in epoch0 for i in b) == list(range(6))  # every sample once per epoch
    assert all(len({groups[i] for i in b}) == 1 for b in epoch0)  # one bucket per batch
    fresh = DataOrder(groups, batch_size=2, seed=3)
    assert [fresh.batch(i) for i in (9, 2, 5)] == [order.batch(i) for i in (9, 2, 5)]
    assert [order.batch(i) for i in range(4, 8)] != epoch0 or [order.batch(i) for i in range(8, 12)] != epoch0
    assert [DataOrder(groups, 2, seed=4).batch(i) for i in range(8)] != [order.batch(i) for i in range(8)]


def test_trains_only_the_adapter(tmp_path) -> None:
    model = standins.make_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = loop.run_training(model, standins.make_samples(), standins.strategy(), standins.options(tmp_path, 6, 3),
                                  save_lora=standins.save_adapter, collate=collate)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed == trainable and changed
    rows = read_metrics(result.metrics_path)
    assert set(rows[0]) >= {"step", "loss", "video_loss", "audio_loss", "lr", "grad_norm", "seconds"}
    assert rows[0]["lr"] == pytest.approx(1e-3 / 3)  # warm-up: step 1 of 3
    state = load_training_state(result.checkpoint)  # weights_only=True
    assert state["step"] == 6 and isinstance(state["rng"]["torch"], torch.Tensor)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_000003", "step_000006"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000006"
    meta = read_lora_metadata(result.lora_path)
    assert meta["ltxic_step"] == "6"
    fresh = standins.make_model()
    load_lora(fresh, result.lora_path)  # the checkpoint's LoRA file holds the trained adapters
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    loaded = {n: p for n, p in fresh.named_parameters() if n in trained}
    assert len(loaded) == len(trained) and all(torch.equal(p, trained[n]) for n, p in loaded.items())
    fig = plot_metrics(tmp_path / "metrics.jsonl")
    assert len(fig.axes[0].lines) == 3


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, reference) -> None:
    out = tmp_path / "run"
    # after the first checkpoint each loss call sleeps, so the kill lands between checkpoints
    code = "import sys; sys.path.insert(0, sys.argv[1]); import runpy; sys.argv = sys.argv[1:]; " \
           "runpy.run_path(sys.argv[0] + '/trainer_standins.py', run_name='__main__')"
    proc = subprocess.Popen([sys.executable, "-c", code, str(TESTS), str(out), str(STEPS), str(INTERVAL), str(INTERVAL * 2)],
                            env={**os.environ, "PYTHONPATH": str(TESTS.parent), "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    logged = read_metrics(out)
    assert INTERVAL <= len(logged) < STEPS  # killed after the first checkpoint, before the end
    assert latest_checkpoint(out).name == FIRST

    result = standins.run(out, STEPS, INTERVAL, resume=True)
    assert result.resumed_from == INTERVAL
    torch.testing.assert_close(torch.tensor(result.losses), torch.tensor(reference[INTERVAL:]), rtol=1e-5, atol=1e-6)
    # the log holds each step once: the steps the killed run did past its checkpoint were dropped
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    torch.testing.assert_close(torch.tensor([r["loss"] for r in rows]), torch.tensor(reference), rtol=1e-5, atol=1e-6)


def test_half_written_checkpoints_are_never_used(tmp_path, reference) -> None:
    standins.run(tmp_path, STEPS, INTERVAL)
    ckpts = tmp_path / "checkpoints"
    # a crashed writer's temp folder, and a damaged newest checkpoint (truncated state file)
    stale = ckpts / ".tmp-step_999999-99999"
    stale.mkdir()
    (stale / "training_state.pt").write_bytes(b"\x80\x02half")
    state = ckpts / LAST / "training_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    assert not checkpoint_is_complete(ckpts / LAST)
    with pytest.warns(UserWarning, match=f"{LAST}: incomplete or damaged"):
        assert latest_checkpoint(tmp_path).name == SECOND

    with pytest.warns(UserWarning, match="damaged"):
        result = standins.run(tmp_path, STEPS, INTERVAL, resume=True)
    assert result.resumed_from == 2 * INTERVAL
    torch.testing.assert_close(torch.tensor(result.losses), torch.tensor(reference[2 * INTERVAL:]), rtol=1e-5, atol=1e-6)
    assert checkpoint_is_complete(ckpts / LAST)  # rewritten, good this time
    assert not stale.exists()
    assert (ckpts / "latest").read_text().strip() == LAST


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    real_save = torch.save

    def save(obj, path, *a, **kw):
        if obj.get("step") == 2 * INTERVAL:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(trainer.torch, "save", save)
    with pytest.raises(DiskFullError, match=rf"disk full while writing checkpoint step {2 * INTERVAL}.*previous checkpoint is intact: .*{FIRST}"):
        standins.run(tmp_path, STEPS, INTERVAL)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", FIRST]
    assert checkpoint_is_complete(ckpts / FIRST)
    assert (ckpts / "latest").read_text().strip() == FIRST


def test_out_of_memory_names_settings_to_lower(tmp_path) -> None:
    class Oom:
        def loss(self, model, batch, generator):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(TrainingOOMError) as info:
        standins.run(tmp_path, 4, 2, strategy_=Oom())
    message = str(info.value)
    for setting in ("batch_size", "resolution_buckets", "gradient_checkpointing", "fp8"):
        assert setting in message


def test_refuses_to_overwrite_a_run_without_resume(tmp_path) -> None:
    standins.run(tmp_path, 2, 2)
    with pytest.raises(TrainingError, match="--resume"):
        standins.run(tmp_path, 2, 2)


def test_resume_with_a_different_lora_is_refused(tmp_path) -> None:
    standins.run(tmp_path, 2, 2)
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, LoRAConfig(rank=4, alpha=4, target_modules=("to_q",)))  # another adapter layout
    with pytest.raises(TrainingError, match="lora section changed"):
        loop.run_training(model, standins.make_samples(), standins.strategy(), standins.options(tmp_path, 4, 2),
                             save_lora=standins.save_adapter, resume=True, collate=collate)


def test_state_file_loads_with_weights_only(tmp_path) -> None:
    result = standins.run(tmp_path, 2, 2)
    state = torch.load(result.checkpoint / "training_state.pt", weights_only=True)
    assert set(state) == {"step", "trainable", "optimizer", "scheduler", "data_order", "rng"}
    manifest = json.loads((result.checkpoint / "manifest.json").read_text())
    assert set(manifest["files"]) == {"lora.safetensors", "training_state.pt"}


def test_options_from_the_tiny_cpu_config(tmp_path) -> None:
    config = pytest.importorskip("ltxic.training.config", reason="lands with the config branch")
    cfg = config.load_config(config.example_config("tiny_cpu"), check_files=False)
    options = trainer.options_from_config(cfg)
    assert options.steps == cfg.optimization.steps and options.learning_rate == cfg.optimization.learning_rate
    assert options.checkpoint_interval == cfg.output.checkpoint_interval
    assert options.keep_last_n == (cfg.output.keep_last_n or 0)
    assert options.lora_metadata["reference_downscale_factor"] == str(cfg.training_strategy.reference_downscale_factor)
    assert options.lora_metadata["training_strategy"] == "audio_ref_only_ic"
    # the loop accepts the shipped recipe's schedule settings as they are
    assert loop.lr_lambda(options)(0) == pytest.approx(1 / cfg.optimization.warmup_steps)


def test_keep_last_n_prunes_oldest(tmp_path) -> None:
    standins.run(tmp_path, 5, 1, keep_last_n=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_000004", "step_000005"]


def test_fp8_base_trains_the_lora(tmp_path) -> None:
    from ltxic.models.transformer import quantize_fp8

    model = ltxic.build_transformer("tiny", seed=0)
    try:
        quantize_fp8(model)
        inject_lora(model, standins.LORA)
        result = loop.run_training(model, standins.make_samples(), standins.strategy(), standins.options(tmp_path, 2, 2),
                                      save_lora=standins.save_adapter, collate=collate)
    except (RuntimeError, NotImplementedError) as err:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"float8 upcast is not supported by this CPU build of torch: {err}")
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert model.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn  # the base stays fp8


def test_train_on_the_real_preset_names_the_missing_file_and_its_download(tmp_path) -> None:
    from ltxic.training.config import example_config, load_config
    from ltxic.models.transformer import CheckpointError

    cfg = load_config(example_config("ltx23_h100"), check_files=False)
    cfg.model.comfyui_root = tmp_path / "empty_tree"
    cfg.output.dir = tmp_path / "out"
    with pytest.raises(CheckpointError, match=r"ltx-2\.3-22b-dev\.safetensors: missing.*ltxic download --only checkpoint --root"):
        trainer.train(cfg, progress=False)
