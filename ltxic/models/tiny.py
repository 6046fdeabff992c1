"""The tiny LTX-2 kit in one call: pretrained transformer, video and audio codecs and text encoder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.model.transformer.model import LTXModel

from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.transformer import PRETRAIN_COMMAND, CheckpointError, default_tiny_dir, load_pretrained_tiny
from ltxic.models.text_encoder import TextEncoder

VIDEO_CODEC_FILE = "video_codec.safetensors"
AUDIO_CODEC_FILE = "audio_codec.safetensors"
TEXT_ENCODER_FILE = "text_encoder.safetensors"
RECORD_FILE = "pretrain_record.json"


@dataclass
class TinyAssets:
    transformer: LTXModel
    video_codec: VideoCodec
    audio_codec: AudioCodec
    text_encoder: TextEncoder

    def freeze(self) -> TinyAssets:
        """Eval mode, no gradients: the frozen base that an IC-LoRA trains on top of."""
        for module in (self.transformer, self.video_codec, self.audio_codec, self.text_encoder):
            module.eval().requires_grad_(False)
        return self


def load_tiny_assets(dir: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> TinyAssets:
    """Load the pretrained tiny kit from ``dir`` (default ``data_samples/tiny``); never downloads."""
    root = Path(dir if dir is not None else default_tiny_dir())
    missing = [n for n in (VIDEO_CODEC_FILE, AUDIO_CODEC_FILE, TEXT_ENCODER_FILE, "transformer.safetensors") if not (root / n).exists()]
    if missing:
        raise CheckpointError(f"{root}: missing tiny asset file(s) {missing}. Create them with `{PRETRAIN_COMMAND}`.")
    return TinyAssets(
        transformer=load_pretrained_tiny(root, device=device),
        video_codec=VideoCodec.load(root / VIDEO_CODEC_FILE, device=device),
        audio_codec=AudioCodec.load(root / AUDIO_CODEC_FILE, device=device),
        text_encoder=TextEncoder.load(root / TEXT_ENCODER_FILE, device=device),
    )
