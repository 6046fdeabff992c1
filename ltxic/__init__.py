"""ltxic: train and use identity IC-LoRAs for Lightricks' LTX-2.3 audio-video model.

The public API is deliberately small; each name lives in the module named for what it does.
"""

from ltxic.config import ConfigError, TrainingConfig, load_config
from ltxic.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
from ltxic.media import MediaError
from ltxic.models import (
    PRESETS,
    CheckpointError,
    build_transformer,
    load_transformer,
    preset_config,
    save_transformer,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AudioGeometry",
    "CheckpointError",
    "MediaError",
    "ConfigError",
    "TrainingConfig",
    "VideoGeometry",
    "__version__",
    "audio_tokens",
    "build_transformer",
    "load_config",
    "load_transformer",
    "preset_config",
    "save_transformer",
    "video_tokens",
]
