"""A miniature of LTX-2.3's official files, laid out as a ComfyUI ``models/`` tree, built offline.

Why: the real assets (a 22B audio-video checkpoint, a 12B Gemma 3, upscalers, the distilled LoRA) are
~70 GB and need a GPU; CI has 2 CPU cores and no network. The miniature lets tests drive the *real* loading
path (ltx-core's configurators, key filters, LoRA fusion, Hugging Face tokenizer / image processor / Gemma
shards) end to end in seconds.

What is the same as the real files: file names and folders, safetensors key names and prefixes (every key is
derived by instantiating ltx-core's own classes and inverting ltx-core's own key filters), the ``config``
metadata schema (same sections and keys as ``ltxic/ltx23_config.json``, only sizes shrunk, plus an explicit
``transformer.audio_in_channels``), every structural choice (split RoPE, gated attention, cross-attention
AdaLN, V2 caption projection before the connectors, 32x spatial / 8x temporal VAE with the same block kinds,
stereo 16 kHz audio VAE with 64 mel bins and hop 160, vocoder + bandwidth extension to 48 kHz), the Gemma 3
folder layout (config, SentencePiece ``tokenizer.model`` + ``tokenizer.json``, image processor, two weight
shards + index with the multimodal QAT checkpoint's key names, including its transformers-4 nesting
``vision_tower.vision_model.*``) and bf16 storage.

What differs: only sizes and the weights, which are random (seeded, deterministic) but well scaled; the
per-channel latent statistics are mean ~0 / std ~1; the BWE's STFT and mel buffers are real Hann-DFT and
slaney-mel bases. The VAE per-channel statistics hold only the two buffers ltx-core reads
(``mean-of-means``, ``std-of-means``). The tokenizer is a real SentencePiece BPE model trained on built-in
caption-like English with Gemma's special ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3) but a tiny vocabulary.
``gemma_3_12B_it_fp4_mixed.safetensors`` is only a stand-in for ComfyUI's single-file Gemma (a few tensors with
ComfyUI-style names, no config) used to test the error raised when a user passes that file as the Gemma folder.

Full size (``scale="full"``): the same builder writes the tree at LTX-2.3's real sizes with random weights, for
benchmarking the real loading / training / sampling code on a GPU box that has no real weights: the official config
(``ltx23_config.json``), Gemma 3 12B at its real architecture (ltx-core's ``GEMMA3_CONFIG_FOR_LTX``; 5 shards + index;
the tokenizer stays the small trained one, whose ids are all below the vocabulary; image processor at 896 px), the
upscalers at ltx-core's ``LatentUpsampler`` default sizes and the distilled LoRA at rank 384 (~78 GB in all). Each
part is constructed directly on ``device`` (bf16 default dtype, so nothing is built on the CPU), given its
constructors' random init there, and streamed tensor by tensor into a :class:`StreamingSafetensorsWriter`
(byte-identical to ``safetensors.torch.save_file``), one part at a time. :func:`plan_tree` gives every file's exact
size from a meta-device plan without allocating. The miniature goes through the same code (same bytes as before).

Usage: ``python -m ltxic.miniature --out DIR [--scale full --device cuda] [--plan]`` or :func:`build_miniature`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import functools
import gc
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch

from ltxic.io_utils import DiskFullError, atomic_path, write_json_atomic
from ltxic.safetensors_stream import StreamingSafetensorsWriter, TensorSpec, safetensors_size, spec_nbytes

CHECKPOINT_NAME = "ltx-2.3-22b-dev.safetensors"
GEMMA_DIR_NAME = "gemma-3-12b-it-qat-q4_0-unquantized"
COMFY_GEMMA_NAME = "gemma_3_12B_it_fp4_mixed.safetensors"
SPATIAL_UPSCALER_NAME = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
TEMPORAL_UPSCALER_NAME = "ltx-2.3-temporal-upscaler-x2-1.0.safetensors"
DISTILLED_LORA_NAME = "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"

STORAGE_DTYPE = torch.bfloat16
LORA_RANK = 8

Scale = Literal["mini", "full"]
SCALES: tuple[str, ...] = ("mini", "full")
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
    return json.loads(resources.files("ltxic").joinpath("ltx23_config.json").read_text(encoding="utf-8"))


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


@dataclass(frozen=True)
class MiniatureFiles:
    root: Path
    checkpoint: Path
    gemma_dir: Path
    comfy_gemma: Path
    spatial_upscaler: Path
    temporal_upscaler: Path
    distilled_lora: Path

    def all_files(self) -> list[Path]:
        out: list[Path] = []
        for f in fields(self):
            p = getattr(self, f.name)
            if f.name == "root":
                continue
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
        return out


# --------------------------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class _ScaleSpec:
    name: str
    config: dict[str, Any]
    upscaler: dict[str, Any]
    lora_rank: int
    gemma_hidden: int
    gemma_layers: int
    gemma_image_size: int
    gemma_mm_tokens: int
    build_dtype: torch.dtype  # default dtype while modules are constructed (and randomly initialised)


def _scale_spec(scale: str) -> _ScaleSpec:
    if scale == "mini":
        return _ScaleSpec("mini", copy.deepcopy(MINIATURE_CONFIG), dict(UPSCALER_CONFIG), LORA_RANK, GEMMA_HIDDEN,
                          GEMMA_LAYERS, GEMMA_IMAGE_SIZE, GEMMA_MM_TOKENS, torch.float32)
    if scale == "full":
        from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

        text, vision = GEMMA3_CONFIG_FOR_LTX.text_config, GEMMA3_CONFIG_FOR_LTX.vision_config
        return _ScaleSpec("full", official_config(), dict(FULL_UPSCALER_CONFIG), FULL_LORA_RANK, text.hidden_size,
                          text.num_hidden_layers, vision.image_size, GEMMA3_CONFIG_FOR_LTX.mm_tokens_per_image,
                          torch.bfloat16)
    raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")


@dataclass(frozen=True)
class _Build:
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


def _storage_dtype(dtype: torch.dtype) -> torch.dtype:
    return STORAGE_DTYPE if dtype.is_floating_point else dtype


def _fill_uninitialised(module: torch.nn.Module, b: _Build) -> None:
    """Give torch.empty-allocated tables (AdaLN scale/shift) small random values, like trained ones."""
    if b.planning:
        return
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "scale_shift_table" in name:
                p.copy_(b.randn(*p.shape) / math.sqrt(p.shape[-1]))


def _statistics(channels: int, b: _Build) -> dict[str, torch.Tensor]:
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


def _transformer_part(config: dict[str, Any], b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    yield from _prefixed("model.diffusion_model.", _transformer_model(config, b).state_dict())


def random_transformer(scale: str = "full", *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                       fp8: bool = False, seed: int = 0, num_layers: int | None = None) -> torch.nn.Module:
    """The LTX-2.3 transformer of ``scale``'s config with random weights, built on ``device`` with no file.

    The same model :func:`ltxic.ltx23.load_transformer` builds from a checkpoint of that scale (same classes, same
    ``fp8`` policy: ltx-core's downcast of the block Linears and upcast per matmul), for measuring training at full
    size where writing and reading 40 GB of random weights would only cost time (``benchmarks/train_speed.py``).
    ``num_layers`` keeps only that many blocks (one full-width block: ``benchmarks/block_memory.py``).
    """
    from ltxic.models import quantize_fp8

    spec = _scale_spec(scale)
    config = spec.config if num_layers is None else {
        **spec.config, "transformer": {**spec.config["transformer"], "num_layers": num_layers}}
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    # the Linears draw their initial weights from the global RNG: seed it too, so `seed` alone decides the weights
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = _transformer_model(config, _Build(device, dtype, gen))
    if fp8:
        model = quantize_fp8(model)
    model.ltxic_config = {"transformer": config["transformer"]}
    model.ltxic_base_model = "ltx-2.3-22b"
    return model


def _transformer_model(config: dict[str, Any], b: _Build) -> torch.nn.Module:
    from ltx_core.model.transformer import LTXModelConfigurator

    with b.modules():
        model = LTXModelConfigurator.from_config(config)
    _fill_uninitialised(model, b)
    return model


def _connector_part(config: dict[str, Any], stream: str, b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    configurator = {"video": Embeddings1DConnectorConfigurator, "audio": AudioEmbeddings1DConnectorConfigurator}[stream]
    with b.modules():
        connector = configurator.from_config(config)
    yield from _prefixed(f"model.diffusion_model.{stream}_embeddings_connector.", connector.state_dict())


def _text_projection_part(config: dict[str, Any], gemma_hidden: int, gemma_layers: int,
                          b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
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


def _module_part(config: dict[str, Any], configurator_path: str, prefix: str, b: _Build, *,
                 fill: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """An ltx-core VAE / vocoder part, without the per-channel statistics (written by :func:`_statistics_part`)."""
    import importlib

    module_name, _, cls_name = configurator_path.rpartition(".")
    configurator = getattr(importlib.import_module(module_name), cls_name)
    with b.modules():
        module = configurator.from_config(config)
    if fill:
        _fill_uninitialised(module, b)
    yield from _prefixed(prefix, _split_statistics(module.state_dict()))


def _statistics_part(prefix: str, channels: int, b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    yield from _prefixed(prefix, _statistics(channels, b))


def _vocoder_part(config: dict[str, Any], b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    from ltx_core.model.audio_vae import VocoderConfigurator

    bwe = config["vocoder"]["bwe"]
    with b.modules():
        vocoder_sd = dict(VocoderConfigurator.from_config(config).state_dict())
    vocoder_sd |= _stft_buffers(bwe["n_fft"], bwe["hop_length"], bwe["num_mels"], bwe["input_sampling_rate"])
    yield from _prefixed("vocoder.", vocoder_sd)


def _upscaler_part(up_cfg: dict[str, Any], b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
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


def _lora_part(config: dict[str, Any], rank: int, b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    """``diffusion_model.<module>.lora_A/B.weight`` for every attention / feed-forward Linear of every block."""
    for name, module in _lora_targets(config):
        yield f"diffusion_model.{name}.lora_A.weight", b.randn(rank, module.in_features) / math.sqrt(module.in_features)
        yield f"diffusion_model.{name}.lora_B.weight", 0.02 * b.randn(module.out_features, rank)


def _comfy_gemma_part(b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    """A stand-in for ComfyUI's single-file Gemma: a few tensors with ComfyUI-style names, no config."""
    yield "model.embed_tokens.weight", 0.02 * b.randn(32, 16)
    yield "model.layers.0.self_attn.q_proj.weight", 0.02 * b.randn(16, 16)
    yield "model.layers.0.mlp.down_proj.weight", 0.02 * b.randn(16, 32)
    yield "model.norm.weight", torch.zeros(16, device="meta" if b.planning else "cpu")


# --------------------------------------------------------------------------------------------- Gemma


def _caption_corpus() -> list[str]:
    """Deterministic caption-like English, enough for a ~1k-piece BPE vocabulary."""
    subjects = ["A young woman", "An old man", "A smiling girl", "A tall boy", "The presenter", "A chef", "Two friends",
                "A singer", "The host", "A dancer", "A teacher", "A doctor"]
    actions = ["speaks to the camera", "walks along the beach", "laughs and waves", "sings softly", "turns slowly",
               "looks out of the window", "explains the recipe", "plays the guitar", "reads a letter aloud",
               "nods and smiles", "drinks a cup of coffee", "dances in the rain"]
    places = ["in a bright kitchen", "at sunset", "in a busy street", "on a quiet stage", "in a dark studio",
              "under soft warm light", "in the forest", "beside a river", "in a modern office", "at night"]
    extras = ["The camera slowly zooms in.", "Birds chirp in the background.", "Soft piano music plays.",
              "The scene is shot in close-up.", "A gentle breeze moves the curtains.", "People chat nearby.",
              "The lighting is cinematic and moody.", "Rain taps on the glass.", "The voice is calm and clear.",
              "Colors are warm and saturated.", "Numbers 0 1 2 3 4 5 6 7 8 9, punctuation: !?;'\"()-"]
    lines = [f"{s} {a} {p}. {e}" for s, a, p, e in itertools.product(subjects, actions, places, extras)]
    return lines[::7]


def _train_tokenizer(workdir: Path, vocab_size: int = GEMMA_VOCAB) -> Path:
    import sentencepiece as spm

    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(_caption_corpus()) + "\n", encoding="utf-8")
    prefix = workdir / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=list(GEMMA_USER_SYMBOLS),
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def _hf_tokenizer(spm_model: Path, chat_template: str) -> Any:
    """A Hugging Face ``GemmaTokenizerFast`` converted from the SentencePiece model (needs protobuf)."""
    from transformers import GemmaTokenizerFast

    tok = GemmaTokenizerFast(
        vocab_file=str(spm_model),
        extra_special_tokens={
            "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
        },
        chat_template=chat_template,
        add_bos_token=True,  # Gemma prepends <bos>
        add_eos_token=False,
    )
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    return tok


_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _token_ids(special_ids: dict[str, int]) -> dict[str, Any]:
    """The Gemma config's special-token fields for this tokenizer (Gemma's own ids: <pad>=0, <eos>=1, <bos>=2)."""
    return {
        "boi_token_index": special_ids["<start_of_image>"],
        "eoi_token_index": special_ids["<end_of_image>"],
        "image_token_index": special_ids["<image_soft_token>"],
        "eos_token_id": [1, special_ids["<end_of_turn>"]],
        "bos_token_id": 2,
        "pad_token_id": 0,
    }


def gemma_config(vocab_size: int, special_ids: dict[str, int], scale: str = "mini") -> Any:
    """The folder's Gemma 3 config: tiny, or (``scale="full"``) ltx-core's Gemma 3 12B (``GEMMA3_CONFIG_FOR_LTX``,
    vocabulary 262208, SigLIP 27 layers at 896 px) with the special-token ids of the folder's tokenizer."""
    from transformers import Gemma3Config

    if scale == "full":
        from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

        data = GEMMA3_CONFIG_FOR_LTX.to_dict()
        data.pop("transformers_version", None)
        data.update(_token_ids(special_ids))
        return Gemma3Config.from_dict(data)
    if scale != "mini":
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return Gemma3Config(
        text_config={
            "hidden_size": GEMMA_HIDDEN,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "intermediate_size": 128,
            "vocab_size": vocab_size,
            "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"],  # Gemma 3's local/global pattern, shortened
            "max_position_embeddings": 2048,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": GEMMA_IMAGE_SIZE,
            "patch_size": GEMMA_PATCH,
            "vision_use_head": False,
        },
        mm_tokens_per_image=GEMMA_MM_TOKENS,
        **_token_ids(special_ids),
        torch_dtype="bfloat16",
        architectures=["Gemma3ForConditionalGeneration"],
    )


def gemma_checkpoint_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Keys of the multimodal QAT checkpoint (saved by transformers 4): the inverse of ltx-core's GEMMA_LLM_KEY_OPS.

    The real file nests the SigLIP tower as ``vision_tower.vision_model.*``; transformers 5 dropped that level from
    ``SiglipVisionModel`` (its own loader strips it), so under transformers 5 a loader that uses ltx-core's key ops
    must also map ``vision_tower.vision_model.`` to ``vision_tower.``. The miniature keeps the real names.
    """
    return dict(_gemma_checkpoint_items(model))


def _gemma_checkpoint_items(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    renames = (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.vision_model.", "vision_tower.vision_model."),  # transformers 4 module layout
        ("model.vision_tower.", "vision_tower.vision_model."),  # transformers 5 module layout
        ("model.multi_modal_projector.", "multi_modal_projector."),
    )
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":  # tied to embed_tokens; ltx-core duplicates it back
            continue
        for src, dst in renames:
            if key.startswith(src):
                yield dst + key[len(src):], value
                break
        else:
            raise KeyError(f"unexpected Gemma parameter {key}")



@functools.lru_cache(maxsize=1)
def _tokenizer_bundle() -> tuple[tuple[tuple[str, bytes], ...], int, tuple[tuple[str, int], ...]]:
    """The trained tokenizer's files (Hugging Face + SentencePiece), its length and the special ids (deterministic)."""
    with tempfile.TemporaryDirectory() as tmpdir:
        work = Path(tmpdir)
        spm_model = _train_tokenizer(work)
        tok = _hf_tokenizer(spm_model, _CHAT_TEMPLATE)
        hf_dir = work / "hf"
        tok.save_pretrained(str(hf_dir))
        shutil.copyfile(spm_model, hf_dir / "tokenizer.model")
        files = tuple((p.name, p.read_bytes()) for p in sorted(hf_dir.iterdir()) if p.is_file())
        special = tuple((s, int(tok.convert_tokens_to_ids(s))) for s in GEMMA_USER_SYMBOLS)
        return files, len(tok), special


def _gemma_config_for(spec: _ScaleSpec) -> Any:
    _, vocab, special = _tokenizer_bundle()
    return gemma_config(vocab, dict(special), scale=spec.name)


def _write_gemma_side_files(folder: Path, spec: _ScaleSpec) -> None:
    """Everything in the Gemma folder but the weights: tokenizer, image processor, processor and model configs."""
    from transformers import Gemma3ImageProcessor

    files, _, _ = _tokenizer_bundle()
    with tempfile.TemporaryDirectory() as tmpdir:
        Gemma3ImageProcessor(
            size={"height": spec.gemma_image_size, "width": spec.gemma_image_size},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
            do_pan_and_scan=False,
        ).save_pretrained(tmpdir)
        files += tuple((p.name, p.read_bytes()) for p in sorted(Path(tmpdir).iterdir()) if p.is_file())
    for name, data in files:
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    # the real folder has it; write it in full whatever the transformers version wrote
    write_json_atomic(folder / "special_tokens_map.json", {
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
    })
    write_json_atomic(folder / "processor_config.json",
                      {"image_seq_length": spec.gemma_mm_tokens, "processor_class": "Gemma3Processor"})
    write_json_atomic(folder / "config.json", _gemma_config_for(spec).to_dict())


def _gemma_part(config: Any, b: _Build) -> Iterator[tuple[str, torch.Tensor]]:
    from transformers import Gemma3ForConditionalGeneration

    with b.modules():
        model = Gemma3ForConditionalGeneration(config).eval()
    yield from _gemma_checkpoint_items(model)


def _gemma_shards(spec: _ScaleSpec, specs: Mapping[str, TensorSpec]) -> dict[str, str]:
    """Which shard holds each key: the miniature's two (language model | the rest), or 5 of about equal size."""
    if spec.name == "mini":
        return {k: f"{GEMMA_DIR_REL}/model-0000{1 if k.startswith('language_model.') else 2}-of-00002.safetensors"
                for k in specs}
    n = FULL_GEMMA_SHARDS
    total = sum(spec_nbytes(s) for s in specs.values()) or 1
    out, cum = {}, 0
    for k in sorted(specs):
        size = spec_nbytes(specs[k])
        index = min(n - 1, (2 * cum + size) * n // (2 * total))
        out[k] = f"{GEMMA_DIR_REL}/model-{index + 1:05d}-of-{n:05d}.safetensors"
        cum += size
    return out


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Job:
    label: str
    produce: Callable[[_Build], Iterable[tuple[str, torch.Tensor]]]
    file: str | None = None  # relative to the root; None: `router` decides per key
    metadata: dict[str, str] | None = None
    router: Callable[[Mapping[str, TensorSpec]], dict[str, str]] | None = None
    reseed: int | None = None  # torch.manual_seed(seed + reseed) before the part is built


def _jobs(spec: _ScaleSpec) -> list[_Job]:
    """Every part of every weight file, in build order."""
    cfg = spec.config
    p = functools.partial
    ck = p(_Job, file=CHECKPOINT_REL, metadata={"config": json.dumps(cfg)})
    dd = cfg["audio_vae"]["model"]["params"]["ddconfig"]
    jobs = [
        ck("transformer", p(_transformer_part, cfg)),
        ck("video connector", p(_connector_part, cfg, "video")),
        ck("audio connector", p(_connector_part, cfg, "audio")),
        ck("text projection", p(_text_projection_part, cfg, spec.gemma_hidden, spec.gemma_layers)),
        ck("video VAE encoder", p(_module_part, cfg, "ltx_core.model.video_vae.VideoEncoderConfigurator", "vae.encoder.")),
        ck("video VAE decoder", p(_module_part, cfg, "ltx_core.model.video_vae.VideoDecoderConfigurator", "vae.decoder.",
                                  fill=True)),
        ck("video VAE statistics", p(_statistics_part, "vae.per_channel_statistics.", cfg["vae"]["latent_channels"])),
        ck("audio VAE encoder", p(_module_part, cfg, "ltx_core.model.audio_vae.AudioEncoderConfigurator",
                                  "audio_vae.encoder.")),
        ck("audio VAE decoder", p(_module_part, cfg, "ltx_core.model.audio_vae.AudioDecoderConfigurator",
                                  "audio_vae.decoder.")),
        # ltx-core sizes the audio statistics by `ch`
        ck("audio VAE statistics", p(_statistics_part, "audio_vae.per_channel_statistics.", dd["ch"])),
        ck("vocoder", p(_vocoder_part, cfg)),
    ]
    for label, rel, temporal in (("spatial upscaler", SPATIAL_UPSCALER_REL, False),
                                 ("temporal upscaler", TEMPORAL_UPSCALER_REL, True)):
        up_cfg = dict(spec.upscaler, spatial_upsample=not temporal, temporal_upsample=temporal)
        jobs.append(_Job(label, p(_upscaler_part, up_cfg), rel, {"config": json.dumps(up_cfg)}))
    jobs.append(_Job("distilled LoRA", p(_lora_part, cfg, spec.lora_rank), DISTILLED_LORA_REL))
    jobs.append(_Job("ComfyUI Gemma stand-in", _comfy_gemma_part, COMFY_GEMMA_REL))
    jobs.append(_Job("Gemma 3", p(_gemma_part, _gemma_config_for(spec)), metadata={"format": "pt"},
                     router=p(_gemma_shards, spec), reseed=1))
    return jobs


@dataclass
class FilePlan:
    """One weight file of the tree: its tensors (storage dtype, shape), metadata and parameters per part."""

    path: str  # relative to the tree's root
    metadata: dict[str, str] | None
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)  # part label -> number of values it stores in this file

    @property
    def nbytes(self) -> int:
        """The file's exact size (header included)."""
        return safetensors_size(self.tensors, self.metadata)

    @property
    def numel(self) -> int:
        return sum(math.prod(shape) for _, shape in self.tensors.values())


def _plan(spec: _ScaleSpec, jobs: Sequence[_Job]) -> tuple[dict[str, FilePlan], dict[str, dict[str, str]]]:
    b = _Build(torch.device("meta"), spec.build_dtype)
    files: dict[str, FilePlan] = {}
    routes: dict[str, dict[str, str]] = {}
    for job in jobs:
        items: dict[str, TensorSpec] = {}
        for name, t in job.produce(b):
            if name in items:
                raise ValueError(f"{job.label}: duplicate key {name}")
            items[name] = (_storage_dtype(t.dtype), tuple(t.shape))
        route = job.router(items) if job.router is not None else dict.fromkeys(items, job.file)
        routes[job.label] = route  # type: ignore[assignment]
        for name, tspec in items.items():
            rel = route[name]
            fp = files.setdefault(rel, FilePlan(rel, job.metadata))
            if fp.metadata != job.metadata:
                raise ValueError(f"{rel}: parts disagree on the metadata")
            if name in fp.tensors:
                raise ValueError(f"{rel}: duplicate key {name}")
            fp.tensors[name] = tspec
            fp.parts[job.label] = fp.parts.get(job.label, 0) + math.prod(tspec[1])
    return files, routes


def plan_files(scale: str = "mini") -> dict[str, FilePlan]:
    """Every weight file of the tree at ``scale`` (relative path -> plan), computed on the meta device: nothing is
    allocated. The small side files (tokenizer, JSON configs, the Gemma index) are not included."""
    spec = _scale_spec(scale)
    return _plan(spec, _jobs(spec))[0]


def plan_tree(scale: str = "mini") -> dict[str, int]:
    """Each weight file's exact size in bytes at ``scale`` (relative path -> bytes), from :func:`plan_files`."""
    return {rel: fp.nbytes for rel, fp in sorted(plan_files(scale).items())}


# --------------------------------------------------------------------------------------------- build


def _tree_files(root: Path) -> MiniatureFiles:
    return MiniatureFiles(
        root=root,
        checkpoint=root / CHECKPOINT_REL,
        gemma_dir=root / GEMMA_DIR_REL,
        comfy_gemma=root / COMFY_GEMMA_REL,
        spatial_upscaler=root / SPATIAL_UPSCALER_REL,
        temporal_upscaler=root / TEMPORAL_UPSCALER_REL,
        distilled_lora=root / DISTILLED_LORA_REL,
    )


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _check_disk(root: Path, plans: Mapping[str, FilePlan], routes: Mapping[str, Mapping[str, str]]) -> None:
    """Fail before writing when the disk cannot hold the tree (old files stay until their new copy is complete)."""
    new = {rel: fp.nbytes for rel, fp in plans.items()}
    old = {rel: (root / rel).stat().st_size if (root / rel).is_file() else 0 for rel in new}
    transient = max((sum(old[r] for r in set(route.values())) for route in routes.values()), default=0)
    need = sum(new.values()) - sum(old.values()) + transient + (1 << 30)
    probe = root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise DiskFullError(errno.ENOSPC, f"{root}: the tree needs about {need / 1e9:.1f} GB free on that disk, "
                                          f"{free / 1e9:.1f} GB are. Free some space or write it elsewhere.")


def build_miniature(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: Scale = "mini",
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> MiniatureFiles:
    """Write the ComfyUI tree under ``root`` (each file atomically) and return its paths.

    ``scale="mini"``: the miniature (~10 MB, CPU, seconds). ``scale="full"``: LTX-2.3's real sizes with random
    weights (~78 GB; use ``device="cuda"``): each part is constructed on ``device`` in bf16, randomly initialised
    there and streamed to disk before the next is built, so peak memory is about one part (the 19B transformer,
    ~38 GB on the GPU) and CPU memory stays ~1-3 GB. ``progress`` (default: on at full scale) shows a tqdm bar.
    """
    spec = _scale_spec(scale)
    dev = torch.device(device)
    if dev.type == "meta":
        raise ValueError("device='meta' allocates nothing: use plan_files() / plan_tree() for the plan")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    root = Path(root)
    files = _tree_files(root)
    show = (scale == "full") if progress is None else progress

    jobs = _jobs(spec)
    plans, routes = _plan(spec, jobs)
    if scale == "full":
        _check_disk(root, plans, routes)
    _write_gemma_side_files(files.gemma_dir, spec)
    planned_shards = {root / rel for rel in plans if rel.startswith(GEMMA_DIR_REL + "/")}
    for stale in files.gemma_dir.glob("model-*.safetensors"):  # a tree of the other scale: loaders read every shard
        if stale not in planned_shards:
            stale.unlink()

    from tqdm.auto import tqdm

    total = sum(fp.nbytes for fp in plans.values())
    writers: dict[str, StreamingSafetensorsWriter] = {}
    rng_devices = [dev.index] if dev.type == "cuda" else []
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not show, desc="weights") as bar, \
            torch.random.fork_rng(devices=rng_devices):
        try:
            torch.manual_seed(seed)
            b = _Build(dev, spec.build_dtype, torch.Generator(device=dev).manual_seed(seed))
            for job in jobs:
                if job.reseed is not None:
                    torch.manual_seed(seed + job.reseed)
                bar.set_description(job.label)
                route = routes[job.label]
                for name, tensor in job.produce(b):
                    rel = route[name]
                    writer = writers.get(rel)
                    if writer is None:
                        fp = plans[rel]
                        writer = StreamingSafetensorsWriter(root / rel, fp.tensors, fp.metadata, on_write=bar.update)
                        writers[rel] = writer.__enter__()
                    writer.write(name, tensor)
                    del tensor
                for rel in [r for r, w in writers.items() if w.complete]:
                    writers.pop(rel).__exit__(None, None, None)
                _release(dev)
            if writers:
                raise RuntimeError(f"files left incomplete: {sorted(writers)}")
        except BaseException:
            info = sys.exc_info()
            for writer in writers.values():
                with contextlib.suppress(BaseException):
                    writer.__exit__(*info)
            raise

    weight_map = {k: Path(rel).name for rel, fp in plans.items() if rel.startswith(GEMMA_DIR_REL + "/") for k in fp.tensors}
    shard_bytes = sum(spec_nbytes(s) for rel, fp in plans.items() if rel.startswith(GEMMA_DIR_REL + "/")
                      for s in fp.tensors.values())
    write_json_atomic(files.gemma_dir / "model.safetensors.index.json",
                      {"metadata": {"total_size": shard_bytes}, "weight_map": dict(sorted(weight_map.items()))})
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.miniature", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder to hold the ComfyUI-style models/ tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=SCALES, default="mini",
                        help="mini: tiny sizes (~10 MB, CPU); full: LTX-2.3's real sizes, random weights (~78 GB)")
    parser.add_argument("--device", default=None,
                        help="where parts are built and filled (default: cuda for --scale full when present, else cpu)")
    parser.add_argument("--plan", action="store_true", help="print the planned files and sizes; write nothing")
    args = parser.parse_args(argv)
    if args.out is None and not args.plan:
        parser.error("--out is required (unless --plan)")
    device = args.device or ("cuda" if args.scale == "full" and torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    planned = plan_tree(args.scale)
    print(f"plan ({args.scale}, {time.perf_counter() - start:.1f} s):")
    for rel, size in planned.items():
        print(f"{size / 1e9:12.6f} GB  {rel}")
    print(f"{sum(planned.values()) / 1e9:12.6f} GB  weights in all", flush=True)
    if args.plan:
        return 0
    start = time.perf_counter()
    files = build_miniature(args.out, seed=args.seed, scale=args.scale, device=device, progress=True)
    seconds = time.perf_counter() - start
    total = 0
    for path in files.all_files():
        size = path.stat().st_size
        total += size
        print(f"{size / 1e6:12.3f} MB  {path.relative_to(files.root)}")
    peak = ""
    if torch.device(device).type == "cuda":
        peak = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    print(f"{total:d} bytes ({total / 1e9:.3f} GB) total, built on {device} in {seconds:.1f} s "
          f"({total / 1e9 / max(seconds, 1e-9):.2f} GB/s){peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
