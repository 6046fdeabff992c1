"""LoRA adapters on the tiny LTX-2 transformer: training only touches adapters, files load in ComfyUI and ltx-core."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from safetensors import safe_open
from safetensors.torch import save_file

import ltxic
from ltxic.models.lora import (
    LoRAConfig,
    LoRAError,
    LoRALinear,
    inject_lora,
    load_lora,
    lora_modules,
    lora_parameters,
    merge_lora,
    read_lora_metadata,
    save_lora,
    set_lora_strength,
)
from test_models import run, tiny_inputs

CFG = LoRAConfig(rank=4, alpha=8)  # scale 2: a power of two, so baking it into the file is exact


def randomize_lora(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Give every lora_B non-zero values, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def inputs():
    return tiny_inputs(ltxic.build_transformer("tiny", seed=0), seed=5)


def test_default_targets_cover_attention_and_ff_of_every_block() -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    names = inject_lora(model, LoRAConfig(rank=2, alpha=2))
    per_block = [n for n in names if n.startswith("transformer_blocks.0.")]
    assert len(names) == 4 * 28 and len(per_block) == 28
    for attn in ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn"):
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            assert f"transformer_blocks.3.{attn}.{proj}" in names
    assert "transformer_blocks.0.ff.net.0.proj" in names and "transformer_blocks.0.audio_ff.net.2" in names
    assert not any("to_gate_logits" in n or "adaln" in n or n.startswith("proj_out") for n in names)
    # only adapters train
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    # the base state-dict keys are unchanged
    base_keys = set(ltxic.build_transformer("tiny").state_dict())
    assert base_keys <= set(model.state_dict())


def test_patterns_suffix_regex_and_errors() -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    names = inject_lora(model, LoRAConfig(rank=2, alpha=2, target_modules=("to_q", r"re:transformer_blocks\.1\.ff\.net\.2")))
    assert len(names) == 4 * 6 + 1 and "transformer_blocks.1.ff.net.2" in names
    with pytest.raises(LoRAError, match="already has LoRA adapters"):
        inject_lora(model, CFG)
    with pytest.raises(LoRAError, match=r"match no linear layer.*transformer_blocks\.\*\.attn1\.to_q"):
        inject_lora(ltxic.build_transformer("tiny"), LoRAConfig(rank=2, alpha=2, target_modules=("attn9.to_x",)))
    with pytest.raises(LoRAError, match="rank"):
        LoRAConfig(rank=0)


def test_output_equals_base_at_init_and_at_strength_zero(inputs) -> None:
    base = ltxic.build_transformer("tiny", seed=0)
    ref = run(base, *inputs)
    model = copy.deepcopy(base)
    inject_lora(model, CFG)
    for r, g in zip(ref, run(model, *inputs)):
        assert torch.equal(r, g)
    randomize_lora(model)
    moved = run(model, *inputs)
    assert not torch.allclose(moved[0], ref[0], atol=1e-4)
    set_lora_strength(model, 0.0)
    for r, g in zip(ref, run(model, *inputs)):
        assert torch.equal(r, g)


def test_one_adamw_step_changes_only_lora_parameters(inputs) -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, CFG)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    video, audio = inputs
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)  # all params: frozen ones get no grad
    vx, ax = model(video, audio, BatchedPerturbationConfig.empty(1))
    loss = (vx - torch.ones_like(vx)).pow(2).mean() + (ax - torch.ones_like(ax)).pow(2).mean()
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    base_names = {n for n in before if not n.endswith((".lora_A", ".lora_B"))}
    assert not (changed & base_names), sorted(changed & base_names)[:5]
    assert any(n.endswith(".lora_B") for n in changed)  # B was zero, the first step moves it
    assert len(base_names) > 200 and all(torch.equal(dict(model.named_parameters())[n], before[n]) for n in base_names)


def test_save_load_into_fresh_base_identical_and_merge(tmp_path, inputs) -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, CFG)
    randomize_lora(model)
    want = run(model, *inputs)
    path = save_lora(model, tmp_path / "id.safetensors", config=CFG,
                     metadata={"training_strategy": "audio_ref_only_ic", "reference_downscale_factor": 2})

    fresh = ltxic.build_transformer("tiny", seed=0)
    names = load_lora(fresh, path)
    assert len(names) == 112
    for a, b in zip(lora_parameters(model), lora_parameters(fresh)):
        assert torch.equal(a, b)
    for w, g in zip(want, run(fresh, *inputs)):
        assert torch.equal(w, g)
    m = fresh.transformer_blocks[0].attn1.to_q
    assert (m.rank, m.alpha) == (4, 8.0)

    merged = merge_lora(fresh)
    assert not lora_modules(merged) and type(merged.transformer_blocks[0].attn1.to_q) is torch.nn.Linear
    assert set(merged.state_dict()) == set(ltxic.build_transformer("tiny").state_dict())
    for w, g in zip(want, run(merged, *inputs)):
        assert torch.allclose(w, g, atol=1e-5, rtol=0), (w - g).abs().max()


def test_keys_and_metadata_match_what_comfyui_and_ltx_pipelines_read(tmp_path) -> None:
    """Key and metadata contract, written down from the readers' source:

    * ComfyUI ``comfy/lora.py`` (``model_lora_keys_unet``: ``diffusion_model.<name>`` for every
      ``diffusion_model.<name>.weight``) and ``comfy/weight_adapter/lora.py`` (``<x>.lora_B.weight`` up (out, r),
      ``<x>.lora_A.weight`` down (r, in), optional ``<x>.alpha``: scale alpha / r, else 1).
    * ComfyUI-LTXVideo ``iclora.py`` ``LTXICLoRALoaderModelOnly``: ``float(metadata["reference_downscale_factor"])``;
      ComfyUI ``comfy_extras/nodes_lt.py`` ``GetICLoRAParameters``: ``round(float(...))``;
      ltx-pipelines ``ic_lora.py`` ``_read_lora_reference_downscale_factor``: ``int(...)``.
    """
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, CFG)
    randomize_lora(model)
    path = save_lora(model, tmp_path / "ltx-2.3-tiny-ic-lora-ref0.5.safetensors", config=CFG,
                     metadata={"training_strategy": "audio_ref_only_ic", "reference_downscale_factor": 2,
                               "base_model": "tiny"})
    key_re = re.compile(r"^diffusion_model\.(transformer_blocks\.\d+\.[a-z0-9_.]+)\.lora_(A|B)\.weight$")
    base_sd = ltxic.build_transformer("tiny").state_dict()
    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
        meta = fh.metadata()
        for key in keys:
            m = key_re.match(key)
            assert m, key
            weight = base_sd[m.group(1) + ".weight"]  # ComfyUI's model key is "diffusion_model." + this
            t = fh.get_tensor(key)
            assert t.shape == ((4, weight.shape[1]) if m.group(2) == "A" else (weight.shape[0], 4))
    assert not any(k.endswith(".alpha") for k in keys)  # scale is baked: ComfyUI and ltx-core agree
    assert len(keys) == 2 * 112
    # what the three readers do with the downscale factor
    assert float(meta["reference_downscale_factor"]) == 2.0
    assert max(1, round(float(meta["reference_downscale_factor"]))) == 2
    assert int(meta["reference_downscale_factor"]) == 2
    assert read_lora_metadata(path) == meta
    assert meta["training_strategy"] == "audio_ref_only_ic" and meta["base_model"] == "tiny"
    assert (meta["lora_rank"], meta["lora_alpha"]) == ("4", "8.0")
    assert json.loads(meta["lora_target_modules"]) == list(CFG.target_modules)
    assert meta["ltxic_version"] == ltxic.__version__ and len(meta["base_model_arch_hash"]) == 16
    with pytest.raises(LoRAError, match="integer"):
        save_lora(model, tmp_path / "bad.safetensors", config=CFG, metadata={"reference_downscale_factor": 1.5})


def test_ltx_core_builder_fuses_our_file_to_the_same_output(tmp_path, inputs) -> None:
    """ltx-pipelines' path: SingleGPUModelBuilder(...).lora(path, strength, LTXV_LORA_COMFY_RENAMING_MAP)."""
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator

    base = ltxic.build_transformer("tiny", seed=0)
    with torch.no_grad():  # real checkpoints are bf16 and ltx-core fuses only into bf16/fp8 weights
        for p in base.parameters():
            p.copy_(p.bfloat16().float())
    ckpt = ltxic.save_transformer(base.to(torch.bfloat16), tmp_path / "tiny-bf16.safetensors")
    base = base.float()
    model = copy.deepcopy(base)
    inject_lora(model, LoRAConfig(rank=4, alpha=3))  # alpha/rank = 0.75: the baked scale must be honoured
    randomize_lora(model, std=0.1)
    lora_path = save_lora(model, tmp_path / "lora.safetensors", config=LoRAConfig(rank=4, alpha=3))
    set_lora_strength(model, 0.7)
    want = run(model, *inputs)
    assert not torch.allclose(want[0], run(base, *inputs)[0], atol=1e-3)

    built = (
        SingleGPUModelBuilder(model_class_configurator=LTXModelConfigurator, model_path=str(ckpt))
        .lora(str(lora_path), 0.7, LTXV_LORA_COMFY_RENAMING_MAP)
        .build(device=torch.device("cpu"), dtype=torch.float32)
    )
    # ltx-core fuses the LoRA'd weights in float32 but leaves untouched ones in the file's bf16 (its
    # DummyRegistry path skips keys already present); upcasting those is lossless.
    fused = built.transformer_blocks[0].attn1.to_q.weight
    assert fused.dtype == torch.float32
    assert not torch.equal(fused, base.transformer_blocks[0].attn1.to_q.weight)
    got = run(built.float(), *inputs)
    for w, g in zip(want, got):
        assert torch.allclose(w, g, atol=1e-4, rtol=0), (w - g).abs().max()


def test_lora_for_another_base_is_refused(tmp_path) -> None:
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, CFG)
    path = save_lora(model, tmp_path / "tiny.safetensors", config=CFG)
    other_cfg = ltxic.preset_config("tiny")
    other_cfg["transformer"]["num_attention_heads"] = 2  # inner dim 64 instead of 128
    other = ltxic.build_transformer(other_cfg)
    with pytest.raises(LoRAError, match=r"tiny\.safetensors: this LoRA was trained for base model 'tiny'.*num_attention_heads"):
        load_lora(other, path)
    # a foreign file (no ltxic metadata) is checked by shape
    sd = {k: v for k, v in ltxic.lora_state_dict(model).items()}
    save_file(sd, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(LoRAError, match=r"foreign\.safetensors: shape mismatch at 'transformer_blocks\.0\.attn1\.to_[kq]'"):
        load_lora(other, tmp_path / "foreign.safetensors")
    save_file({"diffusion_model.transformer_blocks.0.nope.lora_A.weight": torch.zeros(2, 3),
               "diffusion_model.transformer_blocks.0.nope.lora_B.weight": torch.zeros(3, 2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(LoRAError, match="do not exist in this model"):
        load_lora(ltxic.build_transformer("tiny"), tmp_path / "x.safetensors")
    (tmp_path / "p.safetensors").write_bytes(b"\x80\x04pickle" * 20)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_lora(ltxic.build_transformer("tiny"), tmp_path / "p.safetensors")


def test_foreign_alpha_keys_follow_comfyui_rule(tmp_path, inputs) -> None:
    """A peft-style file with ``.alpha`` keys: delta = strength * alpha / r * B @ A (ComfyUI's rule)."""
    model = ltxic.build_transformer("tiny", seed=0)
    inject_lora(model, LoRAConfig(rank=4, alpha=4, target_modules=("attn1.to_q",)))
    randomize_lora(model, std=0.1)
    sd = ltxic.lora_state_dict(model)
    sd = {k: (v * 2 if k.endswith("lora_B.weight") else v) for k, v in sd.items()}
    for k in list(sd):
        if k.endswith(".lora_A.weight"):
            sd[k.replace(".lora_A.weight", ".alpha")] = torch.tensor(2.0)  # alpha/r = 0.5 undoes the x2
    save_file(sd, str(tmp_path / "peft.safetensors"))
    fresh = ltxic.build_transformer("tiny", seed=0)
    load_lora(fresh, tmp_path / "peft.safetensors")
    for w, g in zip(run(model, *inputs), run(fresh, *inputs)):
        assert torch.allclose(w, g, atol=1e-6, rtol=0)


def test_fp8_base_with_lora_trains_and_matches_upcast_reference(tmp_path, inputs) -> None:
    base = ltxic.build_transformer("tiny", seed=0)
    ckpt = ltxic.save_transformer(base, tmp_path / "m.safetensors")
    fp8 = ltxic.load_transformer(ckpt, fp8=True)
    try:
        run(fp8, *inputs)
    except (RuntimeError, NotImplementedError) as err:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"float8 upcast unsupported on this CPU build: {err}")
    # float32 reference holding exactly the fp8-rounded weights
    ref = ltxic.load_transformer(ckpt)
    with torch.no_grad():
        for (n, p), (_, q) in zip(ref.named_parameters(), fp8.named_parameters()):
            p.copy_(q.float())
    inject_lora(fp8, CFG)
    inject_lora(ref, CFG)
    assert isinstance(fp8.transformer_blocks[0].attn1.to_q, LoRALinear)
    assert fp8.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert fp8.transformer_blocks[0].attn1.to_q.lora_A.dtype == torch.float32
    randomize_lora(fp8)
    randomize_lora(ref)
    for w, g in zip(run(ref, *inputs), run(fp8, *inputs)):
        assert torch.allclose(w, g, atol=1e-5, rtol=0)
    # a training step reaches the adapters through the upcast base
    video, audio = inputs
    vx, ax = fp8(video, audio, BatchedPerturbationConfig.empty(1))
    (vx.pow(2).mean() + ax.pow(2).mean()).backward()
    grads = [p.grad for p in lora_parameters(fp8)]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for n, p in fp8.named_parameters() if not n.endswith((".lora_A", ".lora_B")))
    # save from the fp8 model, load into a float32 base: same adapters
    path = save_lora(fp8, tmp_path / "fp8-lora.safetensors", config=CFG)
    back = ltxic.build_transformer("tiny", seed=0)
    load_lora(back, path)
    for a, b in zip(lora_parameters(fp8), lora_parameters(back)):
        assert torch.equal(a, b)
    # merging into fp8 re-rounds the weights: close, not exact; layers go back to upcasting linears
    with torch.no_grad():
        want = run(fp8, *inputs)[0]
        merged = merge_lora(fp8)
        assert merged.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
        got = run(merged, *inputs)[0]
    assert (got - want).norm() / want.norm() < 0.1
