"""The main job on the embedded default, grown issue by issue until it runs the whole course.

Today: environment check, a tiny LTX-2 forward pass on real patchified positions, a checkpoint round trip,
a LoRA saved in the ComfyUI / ltx-core format and reloaded into a fresh base.
"""

from __future__ import annotations

from pathlib import Path

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality

from ltxic.course.envcheck import environment_report
from ltxic.models.latents import audio_tokens, video_tokens
from ltxic.models.lora import LoRAConfig, inject_lora, load_lora, lora_modules, read_lora_metadata, save_lora
from ltxic.models.transformer import build_transformer, count_parameters, load_transformer, save_transformer


def run_demo(out: str | Path = "outputs/demo") -> dict[str, float]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key, value in environment_report(str(out)).items():
        print(f"{key:>14}: {value}")

    model = build_transformer("tiny", seed=0)
    cfg = model.ltxic_config["transformer"]
    print(f"tiny LTX-2 transformer: {count_parameters(model) / 1e6:.2f} M parameters, {cfg['num_layers']} layers")
    gen = torch.Generator().manual_seed(0)
    v_tok, v_pos = video_tokens(torch.randn(1, cfg["in_channels"], 3, 2, 3, generator=gen), fps=24.0)
    a_tok, a_pos = audio_tokens(torch.randn(1, cfg["audio_in_channels"] // 4, 17, 4, generator=gen))
    sigma = torch.tensor([1.0])
    video = Modality(v_tok, sigma, sigma.expand(1, v_tok.shape[1]), v_pos, torch.randn(1, 4, cfg["cross_attention_dim"]))
    audio = Modality(a_tok, sigma, sigma.expand(1, a_tok.shape[1]), a_pos, torch.randn(1, 4, cfg["audio_cross_attention_dim"]))
    with torch.no_grad():
        vx, ax = model(video, audio, BatchedPerturbationConfig.empty(1))
    print(f"forward: video {tuple(vx.shape)}, audio {tuple(ax.shape)}, finite={bool(torch.isfinite(vx).all())}")

    path = save_transformer(model, out / "tiny-transformer.safetensors")
    reloaded = load_transformer(path)
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
    print(f"checkpoint round trip through {path}: identical={same}")

    # LoRA: inject, give the adapters values (as training would), save with metadata, reload into a fresh base.
    lora_cfg = LoRAConfig(rank=4, alpha=4)
    adapted = inject_lora(reloaded, lora_cfg)
    with torch.no_grad():
        for m in lora_modules(reloaded).values():
            m.lora_B.normal_(0.0, 0.02, generator=gen)
        lvx, _ = reloaded(video, audio, BatchedPerturbationConfig.empty(1))
    lora_path = save_lora(
        reloaded, out / "tiny-ic-lora.safetensors", config=lora_cfg,
        metadata={"training_strategy": "audio_ref_only_ic", "reference_downscale_factor": 1, "base_model": "tiny"},
    )
    meta = read_lora_metadata(lora_path)
    print(f"LoRA on {len(adapted)} linears saved to {lora_path}; metadata:")
    for key in ("reference_downscale_factor", "training_strategy", "base_model", "base_model_arch_hash",
                "lora_rank", "lora_alpha", "ltxic_version"):
        print(f"    {key} = {meta[key]}")
    fresh = build_transformer("tiny", seed=0)
    load_lora(fresh, lora_path)
    with torch.no_grad():
        fvx, _ = fresh(video, audio, BatchedPerturbationConfig.empty(1))
    lora_diff = float((fvx - lvx).abs().max())
    print(f"LoRA reloaded into a fresh base: outputs match={lora_diff == 0.0} (max |diff| {lora_diff:.1e}), "
          f"LoRA moved the output by {float((lvx - vx).abs().max()):.3f}")
    return {"video_out_std": float(vx.std()), "audio_out_std": float(ax.std()), "lora_reload_max_diff": lora_diff}
