"""Test-only stand-ins for pieces other branches own (LoRA injection, strategy, cache), so the loop can be
tested before they land. They use the real tiny LTX-2 transformer and real patchified tokens.

Replace with ``ltxic.lora`` / ``ltxic.strategies`` / ``ltxic.cache`` once those are on main.
Also runnable as a script (the SIGKILL test starts it in a subprocess).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality
from safetensors.torch import save_file

import ltxic
from ltxic.trainer import TrainOptions, run_training


def make_model(seed: int = 0) -> torch.nn.Module:
    """Tiny base, frozen, with the blocks' attention output projections as the (stand-in) adapter."""
    model = ltxic.build_transformer("tiny", seed=seed)
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if ".attn1.to_out." in name or ".audio_attn1.to_out." in name:
            param.requires_grad_(True)
    return model


def save_adapter(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path), metadata=metadata)


def make_samples(n: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Encoded samples as a tensor cache would hold them (latent tokens, positions, text contexts)."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        v_tok, v_pos = ltxic.video_tokens(torch.randn(1, 16, 3, 2, 3, generator=gen), fps=24.0)
        a_tok, a_pos = ltxic.audio_tokens(torch.randn(1, 4, 17, 4, generator=gen))
        samples.append({
            "video": v_tok, "video_positions": v_pos, "audio": a_tok, "audio_positions": a_pos,
            "video_context": torch.randn(1, 5, 128, generator=gen), "audio_context": torch.randn(1, 5, 64, generator=gen),
        })
    return samples


class FlowMatching:
    """Rectified-flow velocity loss on video and audio tokens (the shape of the real strategies' loss)."""

    def __init__(self, delay_after: int | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay_after, self.delay = delay_after, delay

    def loss(self, model, batch, generator):
        self.calls += 1
        if self.delay_after is not None and self.calls > self.delay_after:
            time.sleep(self.delay)  # widen the window the SIGKILL test aims at; does not touch numbers
        b = batch["video"].shape[0]
        sigma = torch.rand(b, generator=generator, device=batch["video"].device)
        mods, targets = [], []
        for key in ("video", "audio"):
            x0 = batch[key]
            noise = torch.randn(x0.shape, generator=generator, device=x0.device)
            s = sigma[:, None, None]
            mods.append(Modality(latent=(1 - s) * x0 + s * noise, sigma=sigma, timesteps=sigma[:, None].expand(b, x0.shape[1]),
                                 positions=batch[f"{key}_positions"], context=batch[f"{key}_context"]))
            targets.append(noise - x0)
        pv, pa = model(mods[0], mods[1], BatchedPerturbationConfig.empty(b))
        lv, la = F.mse_loss(pv, targets[0]), F.mse_loss(pa, targets[1])
        return lv + la, {"loss_video": lv.detach(), "audio": la.detach()}  # both spellings strategies use


def options(out: Path, steps: int, interval: int, **kw) -> TrainOptions:
    settings = dict(learning_rate=1e-3, warmup_steps=3, scheduler="cosine", keep_last_n=0, progress=False, seed=7,
                    batch_size=2, grad_accumulation=2)
    return TrainOptions(output_dir=out, steps=steps, checkpoint_interval=interval, **{**settings, **kw})


def run(out: Path, steps: int, interval: int, resume: bool = False, strategy=None, **kw):
    return run_training(make_model(), make_samples(), strategy or FlowMatching(), options(out, steps, interval, **kw),
                        save_lora=save_adapter, resume=resume, groups=[0, 0, 0, 0])


if __name__ == "__main__":
    out, steps, interval, delay_after = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run(out, steps, interval, strategy=FlowMatching(delay_after=delay_after, delay=0.2))
