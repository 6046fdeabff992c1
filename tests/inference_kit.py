"""Tiny model files with random (seeded) weights, saved the way the pretrained kit is, for inference tests.

Real classes and real files (``ltxic.models.tiny.load_tiny_assets`` reads them back); only the weights are untrained.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.lora import LoRAConfig, inject_lora, save_lora
from ltxic.models.transformer import build_transformer, save_transformer
from ltxic.models.text_encoder import TextEncoder, build_vocab

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"


def make_tiny_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    captions = [e["caption"] for e in json.loads((DATA / "dataset.json").read_text())["entries"]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        VideoCodec().save(folder / "video_codec.safetensors", half=False)
        AudioCodec().save(folder / "audio_codec.safetensors", half=False)
        TextEncoder(vocab=build_vocab(captions)).save(folder / "text_encoder.safetensors", half=False)
    save_transformer(build_transformer("tiny", seed=0), folder / "transformer.safetensors")
    return folder


def make_lora(path: Path, *, strategy: str = "audio_ref_only_ic", factor: int = 2, config: dict | None = None, seed: int = 1) -> Path:
    """A LoRA with non-zero random B (so it changes the output), saved with ltxic's metadata."""
    model = build_transformer(config or "tiny", seed=0)
    inject_lora(model, LoRAConfig(rank=4, alpha=4, seed=seed))
    gen = torch.Generator().manual_seed(seed)
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_B"):
            with torch.no_grad():
                mod.lora_B.copy_(torch.randn(mod.lora_B.shape, generator=gen) * 0.05)
    return save_lora(model, path, metadata={"training_strategy": strategy, "reference_downscale_factor": factor})
