"""The main job on the embedded default, grown issue by issue until it runs the whole course.

Today: environment check, a tiny LTX-2 forward pass on real patchified positions, a checkpoint round trip.
"""

from __future__ import annotations

from pathlib import Path

import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality

from ltxic.envcheck import environment_report
from ltxic.latents import audio_tokens, video_tokens
from ltxic.models import build_transformer, count_parameters, load_transformer, save_transformer


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
    return {"video_out_std": float(vx.std()), "audio_out_std": float(ax.std())}
