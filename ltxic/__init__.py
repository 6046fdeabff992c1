"""ltxic: train and use identity IC-LoRAs for Lightricks' LTX-2.3 audio-video model.

The public API is deliberately small; each name lives in the module named for what it does,
listed here in the order of the course (assets, dataset, captions, training, inference, metrics).
"""

# 01 assets
from ltxic.data.assets import asset_status, download_assets

# 02 dataset and 03 captions
from ltxic.data.captions import check_captions, clean_dataset
from ltxic.data.dataset import load_dataset
from ltxic.identity.dataset_check import validate_dataset
from ltxic.data.pairing import pair_folder
from ltxic.io.media import MediaError

# the model at two scales: LTX-2 transformer, tiny codecs and text encoder, LoRA
from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
from ltxic.models.lora import (
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
from ltxic.models.transformer import (
    PRESETS,
    CheckpointError,
    build_transformer,
    load_pretrained_tiny,
    load_transformer,
    preset_config,
    save_transformer,
)
from ltxic.models.text_encoder import TextEncoder
from ltxic.models.tiny import TinyAssets, load_tiny_assets

# 04 training
from ltxic.training.config import ConfigError, TrainingConfig, load_config
from ltxic.models.strategies import EncodedBatch, EncodedSample, collate, get_strategy
from ltxic.training.trainer import train
from ltxic.training.loop import TrainResult

# 05 checkpoints, 06 inference, 07 drift
from ltxic.sampling.generate import GenerateConfig, generate
from ltxic.sampling.guidance import Guidance, StreamGuidance
from ltxic.models.kit import Models
from ltxic.identity.metrics import compare_checkpoints, drift_curve, identity_models, identity_scores, identity_windows
from ltxic.sampling.pipeline import TwoStagePipeline, generate_two_stage
from ltxic.sampling.sampler import SamplingConfig, sample_latents

from ltxic.version import __version__

__all__ = [
    "asset_status",
    "audio_tokens",
    "AudioCodec",
    "AudioGeometry",
    "build_transformer",
    "check_captions",
    "CheckpointError",
    "clean_dataset",
    "collate",
    "compare_checkpoints",
    "ConfigError",
    "download_assets",
    "drift_curve",
    "EncodedBatch",
    "EncodedSample",
    "generate",
    "generate_two_stage",
    "GenerateConfig",
    "Guidance",
    "get_strategy",
    "identity_models",
    "identity_scores",
    "identity_windows",
    "inject_lora",
    "load_config",
    "load_dataset",
    "load_lora",
    "load_pretrained_tiny",
    "load_tiny_assets",
    "load_transformer",
    "lora_state_dict",
    "LoRAConfig",
    "LoRAError",
    "MediaError",
    "Models",
    "merge_lora",
    "pair_folder",
    "preset_config",
    "PRESETS",
    "read_lora_metadata",
    "sample_latents",
    "SamplingConfig",
    "StreamGuidance",
    "save_lora",
    "save_transformer",
    "set_lora_strength",
    "TextEncoder",
    "TinyAssets",
    "train",
    "TrainingConfig",
    "TrainResult",
    "TwoStagePipeline",
    "validate_dataset",
    "video_tokens",
    "VideoCodec",
    "VideoGeometry",
    "__version__",
]
