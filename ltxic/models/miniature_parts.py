"""The parts of the official LTX-2.3 files at a chosen scale (``mini`` for tests, ``comfy`` for a real ComfyUI,
``full`` for GPU benchmarks):
the configs, the scale specs and one generator of named tensors per part, built with ltx-core's own classes.
:mod:`ltxic.models.miniature` plans and writes the files from them."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import torch


CHECKPOINT_NAME = "ltx-2.3-22b-dev.safetensors"
GEMMA_DIR_NAME = "gemma-3-12b-it-qat-q4_0-unquantized"
COMFY_GEMMA_NAME = "gemma_3_12B_it_fp4_mixed.safetensors"
SPATIAL_UPSCALER_NAME = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
TEMPORAL_UPSCALER_NAME = "ltx-2.3-temporal-upscaler-x2-1.0.safetensors"
DISTILLED_LORA_NAME = "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"

STORAGE_DTYPE = torch.bfloat16
LORA_RANK = 8

Scale = Literal["mini", "comfy", "full"]
SCALES: tuple[str, ...] = ("mini", "comfy", "full")
FULL_LORA_RANK = 384  # the "-384-" in the distilled LoRA's name
FULL_GEMMA_SHARDS = 5  # like the real folder

# Tiny Gemma 3: hidden 64, 2 layers; the text projection flattens num_hidden_layers + 1 hidden states.
GEMMA_HIDDEN = 64
GEMMA_LAYERS = 2
GEMMA_VOCAB = 1024
GEMMA_IMAGE_SIZE = 28
GEMMA_PATCH = 14
GEMMA_MM_TOKENS = 4  # 2x2 patches per side, pooled with kernel 1
# Gemma's control tokens; ids 0-3 as in Gemma, the multimodal / chat ones follow as user symbols.
GEMMA_USER_SYMBOLS = (
    "<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
)

AUDIO_Z = 2
AUDIO_LATENT_MEL = 64 // 4  # two 2x downsamplings of the 64 mel bins (ch_mult has 3 levels)


def official_config() -> dict[str, Any]:
    """The full-size config stored in ``ltx-2.3-22b-dev.safetensors`` (metadata key ``config``)."""
    return json.loads(resources.files("ltxic.models").joinpath("ltx23_config.json").read_text(encoding="utf-8"))


def miniature_config() -> dict[str, Any]:
    """The official config with only sizes shrunk (same sections, keys and structural choices)."""
    cfg = official_config()
    t = cfg["transformer"]
    t.update(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=32,
        cross_attention_dim=64,
        caption_channels=GEMMA_HIDDEN,
        in_channels=16,
        out_channels=16,
        audio_num_attention_heads=2,
        audio_attention_head_dim=16,
        audio_cross_attention_dim=32,
        audio_in_channels=AUDIO_Z * AUDIO_LATENT_MEL,  # not in the official config: ltx-core's default is 128
        audio_out_channels=AUDIO_Z * AUDIO_LATENT_MEL,
        connector_num_attention_heads=2,
        connector_attention_head_dim=32,
        connector_num_layers=1,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=16,
    )
    vae = cfg["vae"]
    # The encoder widens from latent_channels (ltx-core ignores encoder_base_channels); the decoder starts at
    # 8 x decoder_base_channels, and its depth-to-space convolutions dominate the file size.
    vae.update(latent_channels=16, encoder_base_channels=16, decoder_base_channels=8)
    for key in ("encoder_blocks", "decoder_blocks"):
        vae[key] = [[name, {"num_layers": 1} if name == "res_x" else params] for name, params in vae[key]]
    dd = cfg["audio_vae"]["model"]["params"]["ddconfig"]
    dd.update(z_channels=AUDIO_Z, ch=AUDIO_Z * AUDIO_LATENT_MEL, num_res_blocks=1)
    # Each upsample halves the channels: 6 vocoder stages need >= 64, 5 BWE stages >= 32.
    cfg["vocoder"]["vocoder"]["upsample_initial_channel"] = 64
    cfg["vocoder"]["bwe"]["upsample_initial_channel"] = 32
    return cfg


MINIATURE_CONFIG: dict[str, Any] = miniature_config()

# ComfyUI's LTX-2 latent interfaces, fixed whatever the checkpoint's config says (comfy/sd.py: 128 video latent
# channels; causal_audio_autoencoder.py: 128 audio statistics; supported_models.LTXAV's latent format).
COMFY_VIDEO_LATENT = 128
COMFY_AUDIO_Z = 8  # x 16 latent mel bins = 128 audio latent features


def comfy_config() -> dict[str, Any]:
    """The miniature with ComfyUI's fixed latent interfaces: 128 video latent channels, 8 x 16 audio latents and
    128 audio statistics (ltx-core sizes them by ``ch``); every width inside the models stays the miniature's."""
    cfg = miniature_config()
    audio = COMFY_AUDIO_Z * AUDIO_LATENT_MEL
    cfg["transformer"].update(in_channels=COMFY_VIDEO_LATENT, out_channels=COMFY_VIDEO_LATENT,
                              audio_in_channels=audio, audio_out_channels=audio)
    vae = cfg["vae"]
    # Both ltx-core and ComfyUI widen the encoder from 128 (ltx-core from latent_channels, ComfyUI from
    # encoder_base_channels); multipliers of 1 keep it at 128 instead of growing to 1024.
    vae.update(latent_channels=COMFY_VIDEO_LATENT, encoder_base_channels=COMFY_VIDEO_LATENT)
    vae["encoder_blocks"] = [[name, {"multiplier": 1} if "multiplier" in params else params]
                             for name, params in vae["encoder_blocks"]]
    # ch_mult keeps its three levels (two 2x mel downsamplings) but not the widening
    cfg["audio_vae"]["model"]["params"]["ddconfig"].update(z_channels=COMFY_AUDIO_Z, ch=audio, ch_mult=[1, 1, 1])
    return cfg

UPSCALER_CONFIG: dict[str, Any] = {
    "_class_name": "LatentUpsampler",
    "in_channels": MINIATURE_CONFIG["vae"]["latent_channels"],
    "mid_channels": 32,  # GroupNorm(32, mid_channels)
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


# ltx-core's LatentUpsampler defaults (the official upscalers' architecture)
FULL_UPSCALER_CONFIG: dict[str, Any] = dict(UPSCALER_CONFIG, in_channels=128, mid_channels=512, num_blocks_per_stage=4)

CHECKPOINT_REL = f"models/checkpoints/{CHECKPOINT_NAME}"
GEMMA_DIR_REL = f"models/text_encoders/{GEMMA_DIR_NAME}"
COMFY_GEMMA_REL = f"models/text_encoders/{COMFY_GEMMA_NAME}"
SPATIAL_UPSCALER_REL = f"models/latent_upscale_models/{SPATIAL_UPSCALER_NAME}"
TEMPORAL_UPSCALER_REL = f"models/latent_upscale_models/{TEMPORAL_UPSCALER_NAME}"
DISTILLED_LORA_REL = f"models/loras/{DISTILLED_LORA_NAME}"


# --------------------------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class ScaleSpec:
    name: str
    config: dict[str, Any]
    upscaler: dict[str, Any]
    lora_rank: int
    gemma_hidden: int
    gemma_layers: int
    gemma_image_size: int
    gemma_mm_tokens: int
    build_dtype: torch.dtype  # default dtype while modules are constructed (and randomly initialised)
    gemma_scale: str = "mini"  # the Gemma folder's scale (the comfy scale keeps the miniature's)


def scale_spec(scale: str) -> ScaleSpec:
    if scale == "mini":
        return ScaleSpec("mini", copy.deepcopy(MINIATURE_CONFIG), dict(UPSCALER_CONFIG), LORA_RANK, GEMMA_HIDDEN,
                          GEMMA_LAYERS, GEMMA_IMAGE_SIZE, GEMMA_MM_TOKENS, torch.float32)
    if scale == "comfy":
        cfg = comfy_config()
        return ScaleSpec("comfy", cfg, dict(UPSCALER_CONFIG, in_channels=cfg["vae"]["latent_channels"]), LORA_RANK,
                         GEMMA_HIDDEN, GEMMA_LAYERS, GEMMA_IMAGE_SIZE, GEMMA_MM_TOKENS, torch.float32)
    if scale == "full":
        from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

        text, vision = GEMMA3_CONFIG_FOR_LTX.text_config, GEMMA3_CONFIG_FOR_LTX.vision_config
        return ScaleSpec("full", official_config(), dict(FULL_UPSCALER_CONFIG), FULL_LORA_RANK, text.hidden_size,
                          text.num_hidden_layers, vision.image_size, GEMMA3_CONFIG_FOR_LTX.mm_tokens_per_image,
                          torch.bfloat16, gemma_scale="full")
    raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")


@dataclass(frozen=True)
class Build:
    """Where and how parts are built; ``gen=None`` plans on the meta device (allocates and draws nothing)."""

    device: torch.device
    dtype: torch.dtype
    gen: torch.Generator | None = None

    @property
    def planning(self) -> bool:
        return self.gen is None

    @contextlib.contextmanager
    def modules(self) -> Iterator[None]:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            with torch.device(self.device):
                yield
        finally:
            torch.set_default_dtype(previous)

    def randn(self, *shape: int) -> torch.Tensor:
        if self.gen is None:
            return torch.empty(shape, device="meta")
        return torch.randn(shape, generator=self.gen, device=self.gen.device)

    def rand(self, *shape: int) -> torch.Tensor:
        if self.gen is None:
            return torch.empty(shape, device="meta")
        return torch.rand(shape, generator=self.gen, device=self.gen.device)


# --------------------------------------------------------------------------------------------- helpers


def _prefixed(prefix: str, sd: Mapping[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    for k, v in sd.items():
        yield prefix + k, v


def storage_dtype(dtype: torch.dtype) -> torch.dtype:
    return STORAGE_DTYPE if dtype.is_floating_point else dtype


def _fill_uninitialised(module: torch.nn.Module, b: Build) -> None:
    """Give torch.empty-allocated tables (AdaLN scale/shift) small random values, like trained ones."""
    if b.planning:
        return
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "scale_shift_table" in name:
                p.copy_(b.randn(*p.shape) / math.sqrt(p.shape[-1]))


def _statistics(channels: int, b: Build) -> dict[str, torch.Tensor]:
    return {
        "mean-of-means": 0.05 * b.randn(channels),
        "std-of-means": 1.0 + 0.1 * b.rand(channels),
    }


def _split_statistics(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not k.startswith("per_channel_statistics.")}


@functools.lru_cache(maxsize=4)
def _stft_buffers(n_fft: int, hop: int, n_mels: int, sample_rate: int) -> dict[str, torch.Tensor]:
    """Hann-windowed DFT analysis / synthesis bases (real rows, then imaginary rows) and a slaney mel filterbank.

    Cached (read-only: callers copy the dict and never modify the tensors)."""
    import torchaudio

    with torch.device("cpu"):
        n_freqs = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / n_fft
        fourier = torch.cat([torch.cos(angle), -torch.sin(angle)])  # (2 * n_freqs, n_fft)
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        inverse = torch.linalg.pinv(fourier * (n_fft / hop)).T * window
        mel = torchaudio.functional.melscale_fbanks(
            n_freqs, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels, sample_rate=sample_rate, norm="slaney",
            mel_scale="slaney",
        ).T
    return {
        "mel_stft.mel_basis": mel.float(),
        "mel_stft.stft_fn.forward_basis": (fourier * window).float()[:, None, :],
        "mel_stft.stft_fn.inverse_basis": inverse.float()[:, None, :],
    }


# --------------------------------------------------------------------------------------------- parts
# Each part yields (key, tensor) under the official names; they are built and written one at a time, in this order
# (which is also the order random numbers are drawn in, so a seed gives the same files).


def transformer_part(config: dict[str, Any], b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    yield from _prefixed("model.diffusion_model.", _transformer_model(config, b).state_dict())


def random_transformer(scale: str = "full", *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                       fp8: bool = False, seed: int = 0, num_layers: int | None = None) -> torch.nn.Module:
    """The LTX-2.3 transformer of ``scale``'s config with random weights, built on ``device`` with no file.

    The same model :func:`ltxic.models.ltx23.load_transformer` builds from a checkpoint of that scale (same classes, same
    ``fp8`` policy: ltx-core's downcast of the block Linears and upcast per matmul), for measuring training at full
    size where writing and reading 40 GB of random weights would only cost time (``benchmarks/train_speed.py``).
    ``num_layers`` keeps only that many blocks (one full-width block: ``benchmarks/block_memory.py``).
    """
    from ltxic.models.transformer import quantize_fp8

    spec = scale_spec(scale)
    config = spec.config if num_layers is None else {
        **spec.config, "transformer": {**spec.config["transformer"], "num_layers": num_layers}}
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    # the Linears draw their initial weights from the global RNG: seed it too, so `seed` alone decides the weights
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = _transformer_model(config, Build(device, dtype, gen))
    if fp8:
        model = quantize_fp8(model)
    model.ltxic_config = {"transformer": config["transformer"]}
    model.ltxic_base_model = "ltx-2.3-22b"
    return model


def _transformer_model(config: dict[str, Any], b: Build) -> torch.nn.Module:
    from ltx_core.model.transformer import LTXModelConfigurator

    with b.modules():
        model = LTXModelConfigurator.from_config(config)
    _fill_uninitialised(model, b)
    return model


def connector_part(config: dict[str, Any], stream: str, b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    configurator = {"video": Embeddings1DConnectorConfigurator, "audio": AudioEmbeddings1DConnectorConfigurator}[stream]
    with b.modules():
        connector = configurator.from_config(config)
    yield from _prefixed(f"model.diffusion_model.{stream}_embeddings_connector.", connector.state_dict())


def text_projection_part(config: dict[str, Any], gemma_hidden: int, gemma_layers: int,
                          b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    """The V2 feature extractor over the flattened num_hidden_layers + 1 Gemma hidden states."""
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

    t = config["transformer"]
    flat = gemma_hidden * (gemma_layers + 1)
    with b.modules():
        projection = FeatureExtractorV2(
            video_aggregate_embed=torch.nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"]),
            embedding_dim=gemma_hidden,
            audio_aggregate_embed=torch.nn.Linear(flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"]),
        )
    yield from _prefixed("text_embedding_projection.", projection.state_dict())


def module_part(config: dict[str, Any], configurator_path: str, prefix: str, b: Build, *,
                 fill: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """An ltx-core VAE / vocoder part, without the per-channel statistics (written by :func:`statistics_part`)."""
    import importlib

    module_name, _, cls_name = configurator_path.rpartition(".")
    configurator = getattr(importlib.import_module(module_name), cls_name)
    with b.modules():
        module = configurator.from_config(config)
    if fill:
        _fill_uninitialised(module, b)
    yield from _prefixed(prefix, _split_statistics(module.state_dict()))


def statistics_part(prefix: str, channels: int, b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    yield from _prefixed(prefix, _statistics(channels, b))


def vocoder_part(config: dict[str, Any], b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    from ltx_core.model.audio_vae import VocoderConfigurator

    bwe = config["vocoder"]["bwe"]
    with b.modules():
        vocoder_sd = dict(VocoderConfigurator.from_config(config).state_dict())
    vocoder_sd |= _stft_buffers(bwe["n_fft"], bwe["hop_length"], bwe["num_mels"], bwe["input_sampling_rate"])
    yield from _prefixed("vocoder.", vocoder_sd)


def upscaler_part(up_cfg: dict[str, Any], b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    with b.modules():
        model = LatentUpsamplerConfigurator.from_config(up_cfg)
    yield from model.state_dict().items()


def _lora_targets(config: dict[str, Any]) -> Iterator[tuple[str, torch.nn.Linear]]:
    """Every attention / feed-forward Linear of every transformer block (found on the meta device)."""
    from ltx_core.model.transformer import LTXModelConfigurator

    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(config)
    for name, module in model.named_modules():
        if not (name.startswith("transformer_blocks.") and isinstance(module, torch.nn.Linear)):
            continue
        if any(part.endswith(("attn", "attn1", "attn2", "ff")) for part in name.split(".")):
            yield name, module


def lora_part(config: dict[str, Any], rank: int, b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    """``diffusion_model.<module>.lora_A/B.weight`` for every attention / feed-forward Linear of every block."""
    for name, module in _lora_targets(config):
        yield f"diffusion_model.{name}.lora_A.weight", b.randn(rank, module.in_features) / math.sqrt(module.in_features)
        yield f"diffusion_model.{name}.lora_B.weight", 0.02 * b.randn(module.out_features, rank)


def comfy_gemma_part(b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    """A stand-in for ComfyUI's single-file Gemma: a few tensors with ComfyUI-style names, no config."""
    yield "model.embed_tokens.weight", 0.02 * b.randn(32, 16)
    yield "model.layers.0.self_attn.q_proj.weight", 0.02 * b.randn(16, 16)
    yield "model.layers.0.mlp.down_proj.weight", 0.02 * b.randn(16, 32)
    yield "model.norm.weight", torch.zeros(16, device="meta" if b.planning else "cpu")
