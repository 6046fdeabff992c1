"""ltxic: train and use identity IC-LoRAs for Lightricks' LTX-2.3 audio-video model.

The public API is deliberately small; each name lives in the module named for what it does.
"""

from ltxic.assets import asset_status, download_assets
from ltxic.captions import check_captions, clean_dataset
from ltxic.codecs import AudioCodec, VideoCodec
from ltxic.config import ConfigError, TrainingConfig, load_config
from ltxic.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
from ltxic.media import MediaError
from ltxic.lora import (
    LoRAConfig,
    LoRAError,
    inject_lora,
    load_lora,
    lora_state_dict,
    merge_lora,
    read_lora_metadata,
    save_lora,
    set_lora_strength,
)
from ltxic.models import (
    PRESETS,
    CheckpointError,
    build_transformer,
    load_pretrained_tiny,
    load_transformer,
    preset_config,
    save_transformer,
)
from ltxic.inference import GenerateConfig, generate
from ltxic.pipeline import TwoStagePipeline
from ltxic.sampler import SamplingConfig, sample_latents
from ltxic.strategies import EncodedBatch, EncodedSample, collate, get_strategy
from ltxic.text_encoder import TextEncoder
from ltxic.tiny import TinyAssets, load_tiny_assets
from ltxic.trainer import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AudioCodec",
    "AudioGeometry",
    "TextEncoder",
    "TinyAssets",
    "VideoCodec",
    "load_pretrained_tiny",
    "load_tiny_assets",
    "CheckpointError",
    "MediaError",
    "ConfigError",
    "TrainingConfig",
    "TrainResult",
    "LoRAConfig",
    "LoRAError",
    "EncodedBatch",
    "EncodedSample",
    "SamplingConfig",
    "GenerateConfig",
    "TwoStagePipeline",
    "VideoGeometry",
    "__version__",
    "asset_status",
    "audio_tokens",
    "build_transformer",
    "check_captions",
    "clean_dataset",
    "download_assets",
    "load_config",
    "inject_lora",
    "load_lora",
    "collate",
    "get_strategy",
    "generate",
    "load_transformer",
    "lora_state_dict",
    "merge_lora",
    "preset_config",
    "read_lora_metadata",
    "save_lora",
    "sample_latents",
    "save_transformer",
    "set_lora_strength",
    "train",
    "video_tokens",
]
