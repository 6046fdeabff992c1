"""LTX-2.3 from its official files: the real model kit, built part by part with ltx-core's own builders.

The kit has the same four parts as the tiny one (:meth:`ltxic.models.kit.Models.tiny`), so the cache, the trainer,
the sampler and the two-stage pipeline never ask which scale they run at:

* the transformer (``LTXModel``), bf16 or with fp8 block weights (ltx-core's ``QuantizationPolicy.fp8_cast``);
* :class:`VideoCodec`: the video VAE encoder and decoder (32x space, 8x time, 128 channels);
* :class:`AudioCodec`: the audio VAE encoder and decoder (stereo 16 kHz log-mels, 8 x 16 latents) with the vocoder
  and its bandwidth extension (48 kHz out);
* :class:`TextEncoder`: Gemma 3 and LTX's embeddings processor (feature extractor + connectors): prompts become
  1024-token video (4096 wide) and audio (2048 wide) contexts.

Every part is built when it is first used and can be freed with ``release()``: caching needs the encoders and
Gemma, training only the transformer, so on one card they are never resident together.

Each part comes from ``SingleGPUModelBuilder`` with ltx-core's key filters and renaming maps (the ones
``ltx_pipelines.utils.model_ledger.ModelLedger`` wires). Two ltx-core facts shape this module:

* ltx-core loads with ``strict=False`` and leaves any parameter it did not find on the meta device with only a
  log line; :func:`build_part` checks every part and raises :class:`CheckpointError` naming the file and the keys.
* ltx-core hard-codes Gemma 3 12B's architecture (``GEMMA3_CONFIG_FOR_LTX``) in its Gemma and embeddings-processor
  configurators. :class:`GemmaConfigurator` and :class:`EmbeddingsProcessorConfigurator` read it from the Gemma
  folder's ``config.json`` instead (ltx-core's 12B values when absent) and otherwise build the same ltx-core
  classes, so the miniature of the official files (``ltxic.models.miniature``) loads through the same path as the real ones.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltxic.models.latents import AudioGeometry, VideoGeometry
from ltxic.models.transformer import FLOAT8, CheckpointError, read_safetensors_header

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]

# Names in a ComfyUI tree, as `ltxic download` lays it out (ltxic/data/assets_manifest.yaml).
CHECKPOINT_FILE = "models/checkpoints/ltx-2.3-22b-dev.safetensors"
GEMMA_DIR = "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized"
SPATIAL_UPSAMPLER_FILE = "models/latent_upscale_models/ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
DISTILLED_LORA_FILE = "models/loras/ltx-2.3-22b-distilled-lora-384-1.1.safetensors"
# which `ltxic download --only NAME` fetches each
ASSET_NAMES = {"checkpoint": "checkpoint", "gemma_root": "gemma-3-12b-hf", "spatial_upsampler": "spatial-upscaler",
               "distilled_lora": "distilled-lora"}

# LTX-2.3's marks in the checkpoint config: the caption projection sits before the connectors (V2 text features)
# and the vocoder has a bandwidth-extension stage. LTX-2 (19B) has neither.
_V23_TRANSFORMER_KEYS = {"caption_proj_before_connector": True, "cross_attention_adaln": True}


def _download_hint(field: str, root: PathLike | None = None) -> str:
    where = f" --root {root}" if root is not None else ""
    return f"`ltxic download --only {ASSET_NAMES[field]}{where}`"


# ----------------------------------------------------------------------------------------------- the files


def check_checkpoint(path: PathLike) -> dict[str, Any]:
    """The config of an LTX-2.3 checkpoint; :class:`CheckpointError` naming the file and the fix otherwise."""
    path = Path(path)
    keys, meta = read_safetensors_header(path)
    if "config" not in meta:
        raise CheckpointError(
            f"{path}: no 'config' in the safetensors metadata, so this is not an official LTX checkpoint "
            f"(ComfyUI-converted or a bare transformer?). Use ltx-2.3-22b-dev.safetensors from {_download_hint('checkpoint')}."
        )
    config = json.loads(meta["config"])
    t = config.get("transformer", {})
    is_23 = all(t.get(k) == v for k, v in _V23_TRANSFORMER_KEYS.items()) and "bwe" in config.get("vocoder", {})
    if not is_23:
        raise CheckpointError(
            f"{path}: this is an LTX-2 checkpoint of another version (LTX-2 19B: no caption projection before the "
            "connectors, no vocoder bandwidth extension), not LTX-2.3. ltxic trains LTX-2.3 22B: get "
            f"ltx-2.3-22b-dev.safetensors with {_download_hint('checkpoint')}."
        )
    for section in ("transformer", "vae", "audio_vae", "vocoder"):
        if section not in config:
            raise CheckpointError(f"{path}: its config has no {section!r} section; the file is not a full LTX-2.3 checkpoint")
    prefixes = ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.", "text_embedding_projection.")
    absent = [p for p in prefixes if not any(k.startswith(p) for k in keys)]
    if absent:
        raise CheckpointError(
            f"{path}: holds no weights under {absent}: this is not the single-file LTX-2.3 checkpoint with the "
            f"transformer, VAEs, vocoder and text projection. Get it with {_download_hint('checkpoint')}."
        )
    return config


def check_gemma_root(path: PathLike) -> Path:
    """The Gemma folder in the Hugging Face layout ltx-core reads; :class:`CheckpointError` otherwise."""
    path = Path(path)
    fix = f"Fetch the Hugging Face folder with {_download_hint('gemma_root')} and pass that folder."
    if path.is_file():
        raise CheckpointError(
            f"{path}: this is one file; ltx-core's Gemma text encoder reads a folder in the Hugging Face layout "
            "(tokenizer.model, preprocessor_config.json, model-*.safetensors). ComfyUI's single-file Gemma "
            f"(e.g. gemma_3_12B_it_fp4_mixed.safetensors) only loads in ComfyUI. {fix}"
        )
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such Gemma folder. {fix}")
    missing = [p for p in ("tokenizer.model", "preprocessor_config.json", "model*.safetensors") if not any(path.rglob(p))]
    if missing:
        raise CheckpointError(f"{path}: the Gemma folder lacks {missing}. {fix}")
    return path


@dataclass(frozen=True)
class LTX23Files:
    """Where the official files are: the checkpoint, the Gemma folder and, for two stages, upsampler and LoRA."""

    checkpoint: Path
    gemma_root: Path | None = None
    spatial_upsampler: Path | None = None
    distilled_lora: Path | None = None

    @classmethod
    def from_comfyui(cls, root: PathLike, *, checkpoint: PathLike | None = None, gemma_root: PathLike | None = None,
                     spatial_upsampler: PathLike | None = None, distilled_lora: PathLike | None = None) -> LTX23Files:
        """The files at their places in a ComfyUI tree (``ltxic download --root ROOT``); explicit paths win.

        A missing file raises one line naming it and the download command that fetches it.
        """
        root = Path(root)
        given = {"checkpoint": checkpoint, "gemma_root": gemma_root, "spatial_upsampler": spatial_upsampler,
                 "distilled_lora": distilled_lora}
        places = {"checkpoint": CHECKPOINT_FILE, "gemma_root": GEMMA_DIR, "spatial_upsampler": SPATIAL_UPSAMPLER_FILE,
                  "distilled_lora": DISTILLED_LORA_FILE}
        found: dict[str, Path | None] = {}
        for name, rel in places.items():
            path = Path(given[name]) if given[name] is not None else root / rel
            if given[name] is None and not path.exists() and name in ("spatial_upsampler", "distilled_lora"):
                found[name] = None  # only the two-stage pipeline needs these; it says so when they are absent
                continue
            if not path.exists():
                raise CheckpointError(f"{path}: missing. Fetch it with {_download_hint(name, root)}")
            found[name] = path
        return cls(**found)  # type: ignore[arg-type]

    def require(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) is None:
                raise CheckpointError(f"no {name.replace('_', ' ')} given; fetch it with {_download_hint(name)}")


# --------------------------------------------------------------------------------------- building one part


def _unloaded(model: nn.Module) -> list[str]:
    names = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    return names + [n for n, b in model.named_buffers() if b.device.type == "meta"]


def build_part(builder: Any, what: str, path: PathLike | tuple[PathLike, ...], *, device: torch.device,
               dtype: torch.dtype | None, prefix: str = "") -> nn.Module:
    """``builder.build(device, dtype)`` in eval mode, frozen, with every weight loaded (else :class:`CheckpointError`)."""
    files = path if isinstance(path, tuple) else (path,)
    for file in files:
        read_safetensors_header(Path(file))  # truncated / not safetensors: a clear error before ltx-core's
    try:
        model = builder.build(device=device, dtype=dtype)
    except torch.OutOfMemoryError as err:
        raise torch.OutOfMemoryError(
            f"out of memory while loading the {what} onto {device}: free the other parts first (Models.release), "
            "use fp8 weights (model.fp8: true) or a card with more memory"
        ) from err
    missing = _unloaded(model)
    if missing:
        where = ", ".join(str(f) for f in files)
        raise CheckpointError(
            f"{where}: the {what} is incomplete: {len(missing)} weights are missing from the file "
            f"(looked for keys {prefix + missing[0]!r}, ... {prefix + missing[-1]!r}). The download is truncated or "
            "the file is another model's; fetch it again with `ltxic download`."
        )
    return model.eval().requires_grad_(False)


def _release(module: nn.Module | None) -> None:
    if module is not None:
        module.to("meta")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class GemmaConfigurator:
    """ltx-core's ``GemmaTextEncoderConfigurator`` with the architecture from the folder's ``config.json``."""

    gemma_config: dict[str, Any]

    def from_config(self, config: dict[str, Any]) -> nn.Module:  # noqa: ARG002 (the checkpoint config is not Gemma's)
        from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
        from transformers import Gemma3Config
        from transformers.models.gemma3 import Gemma3ForConditionalGeneration

        with torch.device("meta"):
            model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(self.gemma_config))
        return GemmaTextEncoder(model=model)


@dataclass(frozen=True)
class EmbeddingsProcessorConfigurator:
    """ltx-core's embeddings processor (V2 feature extractor + connectors) sized for the Gemma in the folder."""

    hidden_size: int
    num_hidden_layers: int

    def from_config(self, config: dict[str, Any]) -> nn.Module:
        from ltx_core.text_encoders.gemma.embeddings_connector import (
            AudioEmbeddings1DConnectorConfigurator,
            Embeddings1DConnectorConfigurator,
        )
        from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
        from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

        t = config["transformer"]
        flat = self.hidden_size * (self.num_hidden_layers + 1)  # every layer's hidden state plus the embeddings
        extractor = FeatureExtractorV2(
            video_aggregate_embed=nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"], bias=True),
            embedding_dim=self.hidden_size,
            audio_aggregate_embed=nn.Linear(flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"], bias=True),
        )
        return EmbeddingsProcessor(
            feature_extractor=extractor,
            video_connector=Embeddings1DConnectorConfigurator.from_config(config),
            audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(config),
        )


def gemma_config(gemma_root: PathLike) -> dict[str, Any]:
    """The folder's Gemma 3 config (``config.json``), or ltx-core's Gemma 3 12B when the folder has none."""
    path = Path(gemma_root) / "config.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    return GEMMA3_CONFIG_FOR_LTX.to_dict()


# -------------------------------------------------------------------------------------------- the codecs


class _Lazy:
    """Parts built on first use from one checkpoint, freed by :meth:`release`.

    ``kind`` names the codec in its cache fingerprint; ``encoder_part`` is what :meth:`release_encoder` frees.
    """

    kind: str
    encoder_part: str

    def __init__(self, checkpoint: PathLike, *, device: str | torch.device, dtype: torch.dtype) -> None:
        self.checkpoint = Path(checkpoint)
        self.device = torch.device(device)
        self.dtype = dtype
        self._parts: dict[str, nn.Module] = {}

    def _part(self, name: str, configurator: Any, sd_ops: Any, prefix: str) -> nn.Module:
        if name not in self._parts:
            from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder

            builder = SingleGPUModelBuilder(model_class_configurator=configurator, model_path=str(self.checkpoint),
                                            model_sd_ops=sd_ops)
            self._parts[name] = build_part(builder, name.replace("_", " "), self.checkpoint, device=self.device,
                                           dtype=self.dtype, prefix=prefix)
        return self._parts[name]

    @property
    def fingerprint(self) -> str:  # the cache key: the file, not a gigabyte of weights hashed
        stat = self.checkpoint.stat()
        return f"ltx23-{self.kind}:{self.checkpoint.name}:{stat.st_size}:{int(stat.st_mtime)}"

    def loaded(self) -> list[str]:
        return sorted(self._parts)

    def release_encoder(self) -> None:
        """Free the encoder (caching is done); the decoder stays for validation and sampling."""
        self.release(self.encoder_part)

    def release(self, *names: str) -> None:
        """Free the named parts (all when none are named); they are rebuilt on next use."""
        for name in names or list(self._parts):
            _release(self._parts.pop(name, None))

    def to(self, device: str | torch.device) -> _Lazy:
        """Where parts are built and run; parts already built move there."""
        self.device = torch.device(device)
        for part in self._parts.values():
            part.to(self.device)
        return self

    def eval(self) -> _Lazy:
        return self

    def requires_grad_(self, flag: bool = False) -> _Lazy:  # noqa: ARG002 (parts are always frozen)
        return self


class VideoCodec(_Lazy):
    """LTX-2.3's video VAE: ``encode`` frames ``(B,3,F,H,W)`` in [-1, 1] to normalized ``(B,128,F',H/32,W/32)``."""

    geometry = VideoGeometry(temporal=8, spatial=32)
    kind, encoder_part = "video-vae", "video_encoder"

    @property
    def encoder(self) -> nn.Module:
        from ltx_core.model.video_vae import VAE_ENCODER_COMFY_KEYS_FILTER, VideoEncoderConfigurator

        return self._part("video_encoder", VideoEncoderConfigurator, VAE_ENCODER_COMFY_KEYS_FILTER, "vae.encoder.")

    @property
    def decoder(self) -> nn.Module:
        from ltx_core.model.video_vae import VAE_DECODER_COMFY_KEYS_FILTER, VideoDecoderConfigurator

        return self._part("video_decoder", VideoDecoderConfigurator, VAE_DECODER_COMFY_KEYS_FILTER, "vae.decoder.")

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        self.geometry.latent_size(*frames.shape[2:])
        return self.encoder(frames.to(self.device, self.dtype)).float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Frames ``(B, 3, F, H, W)``. Clips larger than one tile (512 px, 64 frames) are decoded in overlapping
        tiles with ltx-core's ``tiled_decode`` and ``TilingConfig.default()``, as ltx-pipelines do: a whole
        960x544x121 clip at once needs more activation memory than an 80 GB card has beside the transformer."""
        from ltx_core.model.video_vae import TilingConfig

        latent = latent.to(self.device, self.dtype)
        _, _, f, h, w = latent.shape
        s, t = self.geometry.spatial, self.geometry.temporal
        if max(h, w) * s > 512 or (f - 1) * t + 1 > 64:
            out = torch.cat(list(self.decoder.tiled_decode(latent, TilingConfig.default())), dim=2).float()
        else:
            out = self.decoder(latent).float()
        return out.clamp(-1, 1) if clamp else out


class AudioCodec(_Lazy):
    """LTX-2.3's audio path: mono or stereo 16 kHz -> log-mel -> ``(B,8,T,16)`` latents; back through the
    decoder and the vocoder (with bandwidth extension) to stereo at ``output_sample_rate`` (48 kHz)."""

    geometry = AudioGeometry(sample_rate=16000, hop_length=160, latent_downsample=4)
    kind, encoder_part = "audio-vae", "audio_encoder"

    def __init__(self, checkpoint: PathLike, config: dict[str, Any], *, device: str | torch.device, dtype: torch.dtype) -> None:
        super().__init__(checkpoint, device=device, dtype=dtype)
        params = config["audio_vae"]["model"]["params"]
        dd = params["ddconfig"]
        self.sample_rate = int(params.get("sampling_rate", 16000))
        self.geometry = AudioGeometry(sample_rate=self.sample_rate, hop_length=int(config["audio_vae"]["preprocessing"]["stft"]["hop_length"]),
                                      latent_downsample=2 ** (len(dd["ch_mult"]) - 1))
        self.in_channels = int(dd.get("in_channels", 2))
        self.latent_mel_bins = int(dd["mel_bins"]) // self.geometry.latent_downsample
        vocoder = config["vocoder"]
        self.output_sample_rate = int(vocoder["bwe"]["output_sampling_rate"] if "bwe" in vocoder else vocoder.get("output_sampling_rate", 24000))

    @property
    def encoder(self) -> nn.Module:
        from ltx_core.model.audio_vae import AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER, AudioEncoderConfigurator

        return self._part("audio_encoder", AudioEncoderConfigurator, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER, "audio_vae.encoder.")

    @property
    def decoder(self) -> nn.Module:
        from ltx_core.model.audio_vae import AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, AudioDecoderConfigurator

        return self._part("audio_decoder", AudioDecoderConfigurator, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, "audio_vae.decoder.")

    @property
    def vocoder(self) -> nn.Module:
        from ltx_core.model.audio_vae import VOCODER_COMFY_KEYS_FILTER, VocoderConfigurator

        return self._part("vocoder", VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER, "vocoder.")

    def latent_frames(self, samples: int) -> int:
        return (samples // self.geometry.hop_length + 1 + 3) // self.geometry.latent_downsample

    @torch.no_grad()
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        """Latent ``(B, 8, T, 16)`` of a ``(B, C, N)`` waveform at 16 kHz (mono is duplicated to the VAE's stereo)."""
        from ltx_core.model.audio_vae.audio_vae import encode_audio
        from ltx_core.types import Audio

        if waveform.ndim != 3:
            raise ValueError(f"AudioCodec.encode: waveform must be (B, channels, samples), got {tuple(waveform.shape)}")
        if waveform.shape[1] == 1 and self.in_channels == 2:
            waveform = waveform.expand(-1, 2, -1)
        audio = Audio(waveform=waveform.to(self.device, torch.float32), sampling_rate=self.sample_rate)
        return encode_audio(audio, self.encoder).float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Stereo waveform ``(B, 2, N)`` at :attr:`output_sample_rate`."""
        mel = self.decoder(latent.to(self.device, self.dtype))
        return self.vocoder(mel).float()


class TextEncoder:
    """Gemma 3 (from its folder) + LTX-2.3's embeddings processor (from the checkpoint): prompts -> contexts.

    ``encode(prompts)`` gives ``(video_context (B, 1024, 4096), audio_context (B, 1024, 2048), mask (B, 1024))``.
    """

    def __init__(self, gemma_root: PathLike, checkpoint: PathLike, *, device: str | torch.device, dtype: torch.dtype,
                 offload: bool = False) -> None:
        self.gemma_root = check_gemma_root(gemma_root)
        self.offload = offload  # Gemma's layers stream from pinned host memory (24 GB cards; ltxic.models.offload)
        self.checkpoint = Path(checkpoint)
        self.device = torch.device(device)
        self.dtype = dtype
        self._gemma: nn.Module | None = None
        self._processor: nn.Module | None = None

    @property
    def fingerprint(self) -> str:
        shards = sorted(self.gemma_root.rglob("model*.safetensors"))
        parts = [f"{p.name}:{p.stat().st_size}" for p in shards] + [f"{self.checkpoint.name}:{self.checkpoint.stat().st_size}"]
        return "ltx23-gemma:" + ",".join(parts)

    @property
    def gemma(self) -> nn.Module:
        if self._gemma is None:
            from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
            from ltx_core.text_encoders.gemma import GEMMA_LLM_KEY_OPS, GEMMA_MODEL_OPS, module_ops_from_gemma_root

            shards = tuple(str(p) for p in sorted(self.gemma_root.rglob("model*.safetensors")))
            builder = SingleGPUModelBuilder(
                model_class_configurator=GemmaConfigurator(gemma_config(self.gemma_root)), model_path=shards,
                model_sd_ops=GEMMA_LLM_KEY_OPS, module_ops=(GEMMA_MODEL_OPS, *module_ops_from_gemma_root(str(self.gemma_root))),
            )
            streamed = self.offload and self.device.type == "cuda"
            gemma = build_part(builder, "Gemma text encoder", tuple(shards), dtype=self.dtype,
                               device=torch.device("cpu") if streamed else self.device)
            if streamed:
                from ltxic.models.offload import stream_layers

                language = gemma.model.model.language_model
                layers, language.layers = language.layers, nn.ModuleList()
                gemma.to(self.device)  # embeddings, norms, vision tower: small, resident
                language.layers = layers
                stream_layers(list(layers), self.device)
            self._gemma = gemma
        return self._gemma

    @property
    def processor(self) -> nn.Module:
        if self._processor is None:
            from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
            from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS

            text = gemma_config(self.gemma_root).get("text_config", {})
            configurator = EmbeddingsProcessorConfigurator(int(text.get("hidden_size", 3840)), int(text.get("num_hidden_layers", 48)))
            builder = SingleGPUModelBuilder(model_class_configurator=configurator, model_path=str(self.checkpoint),
                                            model_sd_ops=EMBEDDINGS_PROCESSOR_KEY_OPS)
            self._processor = build_part(builder, "text embeddings processor", self.checkpoint, device=self.device,
                                         dtype=self.dtype, prefix="text_embedding_projection. / *_embeddings_connector.")
        return self._processor

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("TextEncoder.encode takes a list of prompts, not one string: wrap it as [prompt]")
        video, audio, masks = zip(*self.encode_each(texts))
        return torch.cat(video), torch.cat(audio), torch.cat(masks)

    @torch.no_grad()
    def encode_each(self, texts: Sequence[str], *, release: bool = False) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One ``(video_context, audio_context, mask)`` per text. Gemma runs on every text before the connectors run.

        ``release`` frees Gemma before the connectors are built and both after, as ltx-pipelines' ``encode_prompts``
        does: a sampler that encodes its prompts once peaks at Gemma alone, not Gemma beside the connectors.
        """
        hidden = [self.gemma.encode(text) for text in texts]
        if release:
            _release(self._gemma)
            self._gemma = None
        out = []
        for states, mask in hidden:
            processed = self.processor.process_hidden_states(states, mask)
            out.append((processed.video_encoding.float(), processed.audio_encoding.float(),
                        processed.attention_mask.to(torch.int64)))
        if release:
            self.release()
        return out

    def release(self) -> None:
        _release(self._gemma)
        _release(self._processor)
        self._gemma = self._processor = None

    def to(self, device: str | torch.device) -> TextEncoder:
        self.device = torch.device(device)
        for part in (self._gemma, self._processor):
            if part is not None:
                part.to(self.device)
        return self

    def eval(self) -> TextEncoder:
        return self

    def requires_grad_(self, flag: bool = False) -> TextEncoder:  # noqa: ARG002
        return self


# ----------------------------------------------------------------------------------------- the transformer


@dataclass(frozen=True)
class OnlyKeys:
    """ltx-core state-dict ops (``SDOps``) that also skip every key the model being built does not have, so the loader
    never reads those tensors."""

    inner: Any
    keys: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.inner.name}+only-model-keys"

    @property
    def mapping(self) -> tuple[Any, ...]:
        return self.inner.mapping

    def apply_to_key(self, key: str) -> str | None:
        new = self.inner.apply_to_key(key)
        return new if new in self.keys else None

    def apply_to_key_value(self, key: str, value: torch.Tensor) -> Any:
        return self.inner.apply_to_key_value(key, value)


def transformer_builder(checkpoint: PathLike, *, fp8: bool = False,
                        loras: Sequence[tuple[PathLike, float]] = ()) -> Any:
    """ltx-core's ``SingleGPUModelBuilder`` for the LTX-2.3 transformer in ``checkpoint`` (see :func:`load_transformer`).

    It reads only the transformer's own weights: the checkpoint also files the text embeddings connectors under the
    transformer's prefix, and ltx-core's loader would read them onto the device with the rest and drop them only after
    the build (3.3 GB at full size: the whole of the load's excess over the model).
    """
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.sd_ops import SDOps
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
    from ltx_core.quantization import QuantizationPolicy

    sd_ops, module_ops = LTXV_MODEL_COMFY_RENAMING_MAP, ()
    if fp8:
        policy = QuantizationPolicy.fp8_cast()
        sd_ops = SDOps(name=f"{sd_ops.name}+fp8", mapping=(*sd_ops.mapping, *policy.sd_ops.mapping))
        module_ops = policy.module_ops  # the policy casts the block Linears; the rest stays as stored
    builder = SingleGPUModelBuilder(model_class_configurator=LTXModelConfigurator, model_path=str(checkpoint),
                                    model_sd_ops=sd_ops, module_ops=module_ops)
    keys = frozenset(builder.meta_model(builder.model_config(), module_ops).state_dict())
    builder = replace(builder, model_sd_ops=OnlyKeys(sd_ops, keys))
    for path, strength in loras:
        read_safetensors_header(Path(path))
        builder = builder.lora(str(path), float(strength), LTXV_LORA_COMFY_RENAMING_MAP)
    return builder


def load_transformer(checkpoint: PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                     fp8: bool = False, loras: Sequence[tuple[PathLike, float]] = ()) -> nn.Module:
    """The LTX-2.3 ``LTXModel`` from the checkpoint (ltx-core's builder and ComfyUI renaming map).

    ``fp8`` stores the block Linears in ``float8_e4m3fn`` and upcasts them per matmul (ltx-core's
    ``QuantizationPolicy.fp8_cast``): about half the weight memory, the way a 24 GB card holds the model.
    ``loras`` (path, strength) are fused into the weights while loading, as ltx-pipelines build their stage-2
    model with the distilled LoRA: no adapter memory (the rank-384 distilled LoRA as adapters is 8 GB).
    """
    config = check_checkpoint(checkpoint)
    builder = transformer_builder(checkpoint, fp8=fp8, loras=loras)
    model = build_part(builder, "transformer", checkpoint, device=torch.device(device), dtype=None if fp8 else dtype,
                       prefix="model.diffusion_model.")
    # every weight in the compute dtype (fp8 block weights stay fp8): the fp8 policy keeps the rest as stored, and
    # ltx-core's LoRA fusion leaves the weights it did not touch in the file's dtype
    for p in model.parameters():
        if p.is_floating_point() and p.dtype not in FLOAT8 and p.dtype != dtype:
            p.data = p.data.to(dtype)
    model.ltxic_config = {"transformer": config["transformer"]}
    model.ltxic_base_model = "ltx-2.3-22b"
    return model


def load_upsampler(path: PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """ltx-core's ``LatentUpsampler`` from the spatial upscaler file (config in its metadata)."""
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    builder = SingleGPUModelBuilder(model_class_configurator=LatentUpsamplerConfigurator, model_path=str(path))
    return build_part(builder, "spatial upsampler", path, device=torch.device(device), dtype=dtype)


__all__ = [
    "AudioCodec",
    "EmbeddingsProcessorConfigurator",
    "GemmaConfigurator",
    "LTX23Files",
    "OnlyKeys",
    "TextEncoder",
    "VideoCodec",
    "build_part",
    "check_checkpoint",
    "check_gemma_root",
    "gemma_config",
    "load_transformer",
    "transformer_builder",
    "load_upsampler",
]
