"""ltxic: train and use identity IC-LoRAs for Lightricks' LTX-2.3 audio-video model.

The public API is deliberately small; each name lives in the module named for what it does.
"""

from ltxic.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
from ltxic.models import (
    PRESETS,
    CheckpointError,
    build_transformer,
    load_transformer,
    preset_config,
    save_transformer,
)
from ltxic.sampler import SamplingConfig, sample_latents
from ltxic.strategies import EncodedBatch, EncodedSample, collate, get_strategy

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AudioGeometry",
    "CheckpointError",
    "EncodedBatch",
    "EncodedSample",
    "SamplingConfig",
    "VideoGeometry",
    "__version__",
    "audio_tokens",
    "build_transformer",
    "collate",
    "get_strategy",
    "load_transformer",
    "preset_config",
    "sample_latents",
    "save_transformer",
    "video_tokens",
]
