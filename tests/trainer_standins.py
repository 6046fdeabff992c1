"""Pieces for the trainer tests: the real tiny LTX-2 base with a real LoRA (``ltxic.models.lora``), the real
``audio_ref_only_ic`` strategy, and encoded samples written directly as tensors (a stand-in for the latent cache
until the tiny codecs land, so the tests need no codec weights).

Also runnable as a script (the SIGKILL test starts it in a subprocess).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import ltxic
from ltxic.models.lora import LoRAConfig, inject_lora, save_lora
from ltxic.models.strategies import EncodedSample, collate, get_strategy
from ltxic.training.loop import TrainOptions, run_training

LORA = LoRAConfig(rank=4, alpha=4, target_modules=("to_q", "to_v", "to_out.0"), seed=0)


def make_model(seed: int = 0) -> torch.nn.Module:
    model = ltxic.build_transformer("tiny", seed=seed)
    inject_lora(model, LORA)
    return model


def save_adapter(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    save_lora(model, path, config=LORA, metadata=metadata)


def make_samples(n: int = 4, seed: int = 0) -> list[EncodedSample]:
    """Encoded samples as the cache holds them: a 17-frame 64x96 clip's latents, 0.68 s of audio, references."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    return [
        EncodedSample(video_latent=randn(16, 3, 2, 3), video_context=randn(5, 128), audio_context=randn(5, 64),
                      context_mask=torch.ones(5, dtype=torch.bool), audio_latent=randn(1, 17, 16),
                      ref_video_latent=randn(16, 1, 2, 3), ref_audio_latent=randn(1, 12, 16), fps=24.0)
        for _ in range(n)
    ]


class Slow:
    """The real strategy, slowed after ``delay_after`` loss calls: widens the window the SIGKILL test aims at."""

    def __init__(self, strategy, delay_after: int, delay: float) -> None:
        self.strategy, self.delay_after, self.delay, self.calls = strategy, delay_after, delay, 0

    def __getattr__(self, name):  # per_sample_noise and the rest: the wrapped strategy's
        return getattr(self.strategy, name)

    def loss(self, model, batch, generator):
        self.calls += 1
        if self.calls > self.delay_after:
            time.sleep(self.delay)
        return self.strategy.loss(model, batch, generator)


def strategy():
    return get_strategy("audio_ref_only_ic")


def options(out: Path, steps: int, interval: int, **kw) -> TrainOptions:
    settings = dict(learning_rate=1e-3, warmup_steps=3, scheduler="cosine", keep_last_n=0, progress=False, seed=7,
                    batch_size=2, grad_accumulation=2)
    return TrainOptions(output_dir=out, steps=steps, checkpoint_interval=interval, **{**settings, **kw})


def run(out: Path, steps: int, interval: int, resume: bool = False, strategy_=None, **kw):
    return run_training(make_model(), make_samples(), strategy_ or strategy(), options(out, steps, interval, **kw),
                        save_lora=save_adapter, resume=resume, groups=[0, 0, 0, 0], collate=collate)


if __name__ == "__main__":
    out, steps, interval, delay_after = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run(out, steps, interval, strategy_=Slow(strategy(), delay_after, 0.2))
