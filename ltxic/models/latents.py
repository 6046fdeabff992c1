"""Token layout shared by training and sampling: latents <-> transformer tokens and their positions.

Video latents ``(B, C, F, H, W)`` become ``(B, F*H*W, C)`` tokens (patch size 1, as in LTX-2) with
``(B, 3, T, 2)`` position bounds in pixel/second units, computed by ltx-core's latent tools so the
RoPE grid is exactly the pipelines'. Audio latents ``(B, C, T, M)`` become ``(B, T, C*M)`` tokens with
``(B, 1, T, 2)`` time bounds in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, SpatioTemporalScaleFactors, VideoLatentShape


@dataclass(frozen=True)
class VideoGeometry:
    """How pixels map to video latents: the VAE's compression (LTX-2: 8x in time, 32x in space)."""

    temporal: int = 8
    spatial: int = 32

    @property
    def scale_factors(self) -> SpatioTemporalScaleFactors:
        return SpatioTemporalScaleFactors(time=self.temporal, height=self.spatial, width=self.spatial)

    def latent_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        if (frames - 1) % self.temporal or height % self.spatial or width % self.spatial:
            raise ValueError(
                f"{width}x{height}x{frames} does not fit the VAE: width and height must be multiples of "
                f"{self.spatial} and frames of the form {self.temporal}k+1"
            )
        return (frames - 1) // self.temporal + 1, height // self.spatial, width // self.spatial


@dataclass(frozen=True)
class AudioGeometry:
    """How seconds map to audio latents (LTX-2: 16 kHz, hop 160, 4x latent downsampling = 25 latents/s)."""

    sample_rate: int = 16000
    hop_length: int = 160
    latent_downsample: int = 4

    @property
    def latents_per_second(self) -> float:
        return self.sample_rate / self.hop_length / self.latent_downsample


def video_tokens(
    latent: torch.Tensor, fps: float, geometry: VideoGeometry = VideoGeometry()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patchify a ``(B, C, F, H, W)`` video latent; return ``(tokens, positions)``."""
    shape = VideoLatentShape.from_torch_shape(latent.shape)
    tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), shape, fps=fps, scale_factors=geometry.scale_factors)
    state = tools.create_initial_state(device=latent.device, dtype=latent.dtype, initial_latent=latent)
    return state.latent, state.positions.float()


def video_from_tokens(tokens: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`video_tokens` for a latent of ``shape`` ``(B, C, F, H, W)``."""
    return VideoLatentPatchifier(patch_size=1).unpatchify(tokens, VideoLatentShape.from_torch_shape(shape))


def audio_tokens(latent: torch.Tensor, geometry: AudioGeometry = AudioGeometry()) -> tuple[torch.Tensor, torch.Tensor]:
    """Patchify a ``(B, C, T, M)`` audio latent; return ``(tokens, positions)``."""
    shape = AudioLatentShape.from_torch_shape(latent.shape)
    patchifier = AudioPatchifier(
        patch_size=1,
        sample_rate=geometry.sample_rate,
        hop_length=geometry.hop_length,
        audio_latent_downsample_factor=geometry.latent_downsample,
    )
    state = AudioLatentTools(patchifier, shape).create_initial_state(
        device=latent.device, dtype=latent.dtype, initial_latent=latent
    )
    return state.latent, state.positions.float()


def audio_from_tokens(tokens: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`audio_tokens` for a latent of ``shape`` ``(B, C, T, M)``."""
    return AudioPatchifier(patch_size=1).unpatchify(tokens, AudioLatentShape.from_torch_shape(shape))
