"""Tiny video and audio codecs built from ltx-core's own VAE classes, for the embedded tiny LTX-2.

* :class:`VideoCodec` wraps ltx-core's ``VideoEncoder`` / ``VideoDecoder`` (the LTX-2 video VAE) at a small
  width. What differs from the real VAE: 16 latent channels instead of 128 (the tiny transformer's
  ``in_channels``), 8x spatial compression instead of 32x in the shipped codec (a 128x128 toy clip becomes a 16x16
  grid: at 32x a whole face would fall in one or two latent cells and its traits blur away; the earlier 16x codec's
  8x8 grid held the toy clips at 27 dB PSNR, the 8x one at 32), one residual layer per stage,
  no timestep-conditioned decoder, and a plain autoencoder loss (no GAN or perceptual loss). Time is
  compressed 8x exactly as in LTX-2, the first frame kept on its own: ``F' = (F - 1) / 8 + 1``.
  :func:`video_codec_config` builds either geometry (``spatial=8``, the shipped one and ``tiny_pretrain``'s default;
  ``spatial=16``, the default of a bare ``VideoCodec()``, four times fewer tokens, which the tests' random kits use).
  Files keep the block list they were trained with in their metadata, so a codec of either geometry loads as it
  was built.
* :class:`AudioCodec` wraps ltx-core's ``AudioProcessor`` (log-mel, 16 kHz, hop 160, 64 mels),
  ``AudioEncoder`` and ``AudioDecoder`` (4x down in time and mel: 25 latents/s, ``(B, 1, T, 16)`` latents,
  C*M = 16 where LTX-2 has 8*16 = 128) with mono input. The real model turns mels into waveforms with a
  neural vocoder (HiFi-GAN style, with bandwidth extension in 2.3); here Griffin-Lim
  (``torchaudio.transforms.InverseMelScale`` + ``GriffinLim``) does it: a stated simplification that needs no
  training and keeps pitch and spectral envelope (the voice identity), at the cost of a phasey sound.

Both codecs normalize latents with ltx-core's per-channel statistics (mean/std of the encoder means over
toy data, set by :meth:`set_latent_stats` after autoencoder training), so the diffusion model sees
roughly unit-variance latents, as LTX-2's VAEs do.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from ltx_core.model.audio_vae.model_configurator import AudioDecoderConfigurator, AudioEncoderConfigurator
from ltx_core.model.audio_vae.ops import AudioProcessor
from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
from ltx_core.types import Audio
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ltxic.io.files import atomic_path
from ltxic.models.latents import AudioGeometry, VideoGeometry

_R1 = {"num_layers": 1}
_X2 = {"multiplier": 2}


def video_codec_config(latent_channels: int = 16, spatial: int = 16, decoder_base_channels: int = 16) -> dict[str, Any]:
    """ltx-core's VAE config schema (``"vae": {...}``, as stored in real checkpoints) for a tiny video codec.

    ``spatial=16`` is the earlier codec's block list (4x4 patchify, 2x time, 2x all, 2x all), its encoder widths from
    ``latent_channels`` doubling up to 128 (16 channels: 16, 32, 64, 128). ``spatial=8`` (the shipped codec) keeps
    twice the grid (2x2 patchify, then 2x all, 2x all, 2x time, a residual layer after each stage), with encoder
    widths from ``latent_channels`` doubling up to 128. Time is compressed 8x in both. The decoder lists the same
    stages (ltx-core builds them in reverse) from ``8 * decoder_base_channels`` features.
    """
    if spatial == 16:
        width, grows = latent_channels, []
        for _ in range(3):  # the encoder's widths double up to 128 (16 channels: 16, 32, 64, 128)
            grows.append(2 if width < 128 else 1)
            width *= grows[-1]
        encoder = [["res_x", _R1], ["compress_time_res", {"multiplier": grows[0]}], ["compress_all_res", {"multiplier": grows[1]}],
                   ["res_x", _R1], ["compress_all_res", {"multiplier": grows[2]}], ["res_x", _R1]]
        decoder = [["res_x", _R1], ["compress_time", _X2], ["compress_all", _X2], ["res_x", _R1],
                   ["compress_all", _X2], ["res_x", _R1]]
        patch = 4
    elif spatial == 8:
        encoder, decoder, patch, width = [["res_x", _R1]], [["res_x", _R1]], 2, latent_channels
        for name in ("compress_all", "compress_all", "compress_time"):
            grow = 2 if width < 128 else 1
            width *= grow
            encoder += [[f"{name}_res", {"multiplier": grow}], ["res_x", _R1]]
            decoder += [[name, _X2], ["res_x", _R1]]
    else:
        raise ValueError(f"video_codec_config: spatial must be 8 or 16, got {spatial}")
    return {
        "vae": {
            "dims": 3,
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": latent_channels,
            "patch_size": patch,
            "encoder_blocks": encoder,
            "decoder_blocks": decoder,
            "decoder_base_channels": decoder_base_channels,
            "norm_layer": "pixel_norm",
            "latent_log_var": "uniform",
            "causal_decoder": False,
            "timestep_conditioning": False,
            "spatial_padding_mode": "zeros",
        }
    }


TINY_VIDEO_CONFIG: dict[str, Any] = video_codec_config()

# ltx-core's audio VAE config schema ("audio_vae": {...}).
TINY_AUDIO_CONFIG: dict[str, Any] = {
    "audio_vae": {
        "model": {
            "params": {
                "sampling_rate": 16000,
                "ddconfig": {
                    "ch": 16,  # = C*M: ltx-core sizes the per-channel statistics by `ch`
                    "ch_mult": [1, 2, 4],  # 3 levels: 4x down in time and mel (LATENT_DOWNSAMPLE_FACTOR)
                    "num_res_blocks": 1,
                    "attn_resolutions": [],
                    "resolution": 256,
                    "z_channels": 1,
                    "double_z": True,
                    "in_channels": 1,
                    "out_ch": 1,
                    "mel_bins": 64,
                    "mid_block_add_attention": False,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                },
            }
        },
        "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024, "causal": True}, "mel": {"n_mel_channels": 64}},
    }
}


class CodecError(ValueError):
    """An input or a file does not fit a codec; the message names the field or file and the fix."""


def _reset_stats(stats: nn.Module, n: int) -> None:
    stats.get_buffer("mean-of-means").copy_(torch.zeros(n))
    stats.get_buffer("std-of-means").copy_(torch.ones(n))


class _LatentCodec(nn.Module):
    """What both tiny codecs share: ltx-core's per-channel latent statistics in encoder and decoder, and files."""

    encoder: nn.Module
    decoder: nn.Module

    @torch.no_grad()
    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel (video) or per-feature (audio, C*M = 16) mean/std of the *raw* encoder means, stored where
        ltx-core's VAEs keep them; afterwards ``encode`` gives ~unit-variance latents."""
        for stats in (self.encoder.per_channel_statistics, self.decoder.per_channel_statistics):
            stats.get_buffer("mean-of-means").copy_(mean.flatten())
            stats.get_buffer("std-of-means").copy_(std.flatten().clamp_min(1e-4))

    def save(self, path: str | os.PathLike[str], half: bool = True) -> Path:
        return save_module(self, path, half=half)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
        return load_module(cls, path, device=device)


class VideoCodec(_LatentCodec):
    """Tiny LTX-2 video VAE: ``encode`` frames ``(B,3,F,H,W)`` in [-1, 1] to normalized ``(B,16,F',H',W')``."""

    kind = "ltxic.video_codec"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = copy.deepcopy(config if config is not None else TINY_VIDEO_CONFIG)
        self.encoder = VideoEncoderConfigurator.from_config(self.config)
        self.decoder = VideoDecoderConfigurator.from_config(self.config)
        vae = self.config["vae"]
        self.latent_channels = int(vae["latent_channels"])
        blocks = [name for name, _ in vae["encoder_blocks"]]
        time_x = 2 ** sum(b in ("compress_time_res", "compress_time", "compress_all_res", "compress_all", "compress_all_x_y") for b in blocks)
        space_x = vae["patch_size"] * 2 ** sum(
            b in ("compress_space_res", "compress_space", "compress_all_res", "compress_all", "compress_all_x_y") for b in blocks
        )
        self.geometry = VideoGeometry(temporal=time_x, spatial=space_x)
        with torch.no_grad():
            _reset_stats(self.encoder.per_channel_statistics, self.latent_channels)
            _reset_stats(self.decoder.per_channel_statistics, self.latent_channels)

    def _check(self, frames: torch.Tensor) -> None:
        if frames.ndim != 5 or frames.shape[1] != 3:
            raise CodecError(f"VideoCodec.encode: frames must be (B, 3, F, H, W) in [-1, 1], got shape {tuple(frames.shape)}")
        try:
            self.geometry.latent_size(*frames.shape[2:])
        except ValueError as err:
            raise CodecError(f"VideoCodec.encode: {err}; crop or resize the clip first") from err

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalized latent means ``(B, 16, (F-1)/8+1, H/s, W/s)`` (s = ``geometry.spatial``)."""
        self._check(frames)
        return self.encoder(frames)

    def decode(self, latent: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Frames ``(B, 3, 8(F'-1)+1, H'*s, W'*s)``, clamped to [-1, 1] unless ``clamp=False`` (training)."""
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise CodecError(f"VideoCodec.decode: latent must be (B, {self.latent_channels}, F', H', W'), got {tuple(latent.shape)}")
        out = self.decoder(latent)
        return out.clamp(-1, 1) if clamp else out


class AudioCodec(_LatentCodec):
    """Tiny LTX-2 audio path: waveform ``(B,1,N)`` at 16 kHz -> log-mel -> normalized latent ``(B,1,T,16)``."""

    kind = "ltxic.audio_codec"

    def __init__(self, config: dict[str, Any] | None = None, griffin_lim_iters: int = 32) -> None:
        super().__init__()
        self.config = copy.deepcopy(config if config is not None else TINY_AUDIO_CONFIG)
        self.encoder = AudioEncoderConfigurator.from_config(self.config)
        self.decoder = AudioDecoderConfigurator.from_config(self.config)
        params = self.config["audio_vae"]["model"]["params"]
        dd = params["ddconfig"]
        self.sample_rate = int(params["sampling_rate"])
        self.output_sample_rate = self.sample_rate  # Griffin-Lim returns the input rate (the real vocoder: 48 kHz)
        self.hop_length = int(self.encoder.mel_hop_length)
        self.n_fft = int(self.encoder.n_fft)
        self.mel_bins = int(dd["mel_bins"])
        self.latent_channels = int(dd["z_channels"])
        self.latent_mel_bins = self.mel_bins // 2 ** (len(dd["ch_mult"]) - 1)
        if self.latent_channels * self.latent_mel_bins != dd["ch"]:
            raise CodecError(
                f"audio codec config: ddconfig.ch ({dd['ch']}) must equal z_channels * latent mel bins "
                f"({self.latent_channels} * {self.latent_mel_bins}) so ltx-core's per-channel statistics fit the tokens"
            )
        self.geometry = AudioGeometry(sample_rate=self.sample_rate, hop_length=self.hop_length, latent_downsample=4)
        self.processor = AudioProcessor(self.sample_rate, self.mel_bins, self.hop_length, self.n_fft)
        self.griffin_lim_iters = griffin_lim_iters
        with torch.no_grad():
            _reset_stats(self.encoder.per_channel_statistics, int(dd["ch"]))
            _reset_stats(self.decoder.per_channel_statistics, int(dd["ch"]))

    def mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram ``(B, 1, frames, 64)`` of a mono waveform ``(B, 1, N)`` (ltx-core's processor)."""
        if waveform.ndim != 3 or waveform.shape[1] != 1:
            raise CodecError(f"AudioCodec: waveform must be mono (B, 1, N) at {self.sample_rate} Hz, got {tuple(waveform.shape)}")
        return self.processor.waveform_to_mel(Audio(waveform=waveform.float(), sampling_rate=self.sample_rate))

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel)

    def decode_mel(self, latent: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 1, 4T-3, 64)`` from a latent ``(B, 1, T, 16)``."""
        if latent.ndim != 4 or latent.shape[1] * latent.shape[3] != self.latent_channels * self.latent_mel_bins:
            raise CodecError(
                f"AudioCodec.decode: latent must be (B, {self.latent_channels}, T, {self.latent_mel_bins}), got {tuple(latent.shape)}"
            )
        return self.decoder(latent)

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        """Normalized latent ``(B, 1, T, 16)``, T = ceil((N/160 + 1) / 4): 25 latents per second."""
        return self.encode_mel(self.mel(waveform))

    def latent_frames(self, samples: int) -> int:
        """How many latent frames ``encode`` gives for ``samples`` waveform samples."""
        return (samples // self.hop_length + 1 + 3) // 4

    @torch.no_grad()
    def mel_to_waveform(self, mel: torch.Tensor) -> torch.Tensor:
        """Griffin-Lim inversion of log-mels ``(B, 1, frames, 64)`` to ``(B, 1, N)`` (float32, on the CPU or GPU)."""
        import torchaudio

        mag_mel = mel.float().exp().squeeze(1).transpose(1, 2)  # (B, mels, frames), linear magnitude
        inv = torchaudio.transforms.InverseMelScale(
            n_stft=self.n_fft // 2 + 1, n_mels=self.mel_bins, sample_rate=self.sample_rate, f_min=0.0,
            f_max=self.sample_rate / 2.0, norm="slaney", mel_scale="slaney",
        ).to(mel.device)
        gl = torchaudio.transforms.GriffinLim(
            n_fft=self.n_fft, n_iter=self.griffin_lim_iters, win_length=self.n_fft, hop_length=self.hop_length, power=1.0,
        ).to(mel.device)
        wav = gl(inv(mag_mel).clamp_min(0))
        return wav.unsqueeze(1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, 1, N)`` at ``sample_rate`` from a latent (decoder, then Griffin-Lim)."""
        with torch.no_grad():
            return self.mel_to_waveform(self.decode_mel(latent))


def save_module(module: nn.Module, path: str | os.PathLike[str], half: bool = True, extra_meta: dict[str, str] | None = None) -> Path:
    """Write ``module``'s weights as safetensors with ``kind`` and JSON ``config`` in the metadata (atomically).

    ``half`` stores weights as float16 (loading upcasts to float32); latent statistics stay float32.
    """
    tensors = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point() and "per_channel_statistics" not in key:
            value = value.to(torch.float16)
        tensors[key] = value
    meta = {"kind": module.kind, "config": json.dumps(module.config)}  # type: ignore[attr-defined]
    meta.update(extra_meta or {})
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_module_file(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (floats upcast to float32) and metadata of a file written by :func:`save_module`."""
    path = Path(path)
    if not path.exists():
        raise CodecError(f"{path}: no such file. Create the tiny assets with `python -m ltxic.models.tiny_pretrain --out {path.parent}`.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises several types for corrupt files
        raise CodecError(f"{path}: unreadable safetensors file ({err}); recreate it with `python -m ltxic.models.tiny_pretrain`.") from err
    if meta.get("kind") != kind:
        raise CodecError(f"{path}: metadata 'kind' is {meta.get('kind')!r}, expected {kind!r}: this is another model's file.")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors, meta


def load_module(cls: type[nn.Module], path: str | os.PathLike[str], device: str | torch.device = "cpu", **kwargs: Any) -> nn.Module:
    tensors, meta = read_module_file(path, cls.kind)  # type: ignore[attr-defined]
    module = cls(json.loads(meta["config"]), **kwargs)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CodecError(f"{path}: weights do not match the config stored in its metadata ({err})") from err
    return module.eval().to(device)
