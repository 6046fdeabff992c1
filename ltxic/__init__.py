"""ltxic: train and use identity IC-LoRAs for Lightricks' LTX-2.3 audio-video model.

The public API is deliberately small; each name lives in the module named for what it does.
"""

from ltxic.assets import asset_status, download_assets
from ltxic.captions import check_captions, clean_dataset
from ltxic.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
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
    "VideoGeometry",
    "__version__",
    "asset_status",
    "audio_tokens",
    "build_transformer",
    "check_captions",
    "clean_dataset",
    "download_assets",
    "load_transformer",
    "preset_config",
    "save_transformer",
    "video_tokens",
]
