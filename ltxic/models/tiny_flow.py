"""Stage 2's objective for the tiny base: rectified flow on a clip's video and audio tokens, and its fixed evaluation.

The positions come from the codecs' own geometry (:class:`TokenLayout`), as the trainer's strategies and the
sampler build them. Optional clean tokens model the conditioning the real LTX-2 base knows: the first latent frame
given clean (image-to-video) and one latent frame appended after the clip (keyframe conditioning, and the way an IC
reference portrait enters). Used by :mod:`ltxic.models.tiny_pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality

from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.latents import audio_tokens, video_tokens
from ltxic.models.text_encoder import TextEncoder


_VIDEO_PATCHIFIER, _AUDIO_PATCHIFIER = VideoLatentPatchifier(patch_size=1), AudioPatchifier(patch_size=1)


@dataclass
class TokenLayout:
    """Token positions of one clip shape, built with the codecs' own geometry (the same positions the trainer's
    strategies and the sampler give the model), and the pool's captions tokenized once."""

    video_positions: torch.Tensor  # (1, 3, Nv, 2)
    audio_positions: torch.Tensor  # (1, 1, Na, 2)
    tokens: torch.Tensor  # (N, L) caption token ids of the pool
    mask: torch.Tensor  # (N, L)

    @classmethod
    def build(cls, video: VideoCodec, audio: AudioCodec, text: TextEncoder, zv: torch.Tensor, za: torch.Tensor,
              captions: list[str], fps: float, device: str) -> TokenLayout:
        _, v_pos = video_tokens(zv[:1], fps=fps, geometry=video.geometry)
        _, a_pos = audio_tokens(za[:1], geometry=audio.geometry)
        tokens, mask = text.tokenize(captions)
        return cls(v_pos.to(device), a_pos.to(device), tokens.to(device), mask.to(device))


def face_token_mask(boxes: np.ndarray, grid: tuple[int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Which latent video tokens ``(f, h, w)`` hold a clip's face, from its per-pixel-frame face boxes ``(F, 4)``
    (``x0, y0, x1, y1``, exclusive; ``ClipTruth.face_box``) at frame size ``(H, W)``. Latent frame 0 is pixel frame 0,
    latent frame ``k`` the ``(F - 1) / (f - 1)`` pixel frames before and at ``k * (F - 1) / (f - 1)``; a token holds
    the face where the union of those frames' boxes touches its cell."""
    f, h, w = grid
    n, (height, width) = len(boxes), size
    step = (n - 1) // max(1, f - 1)
    sy, sx = height / h, width / w
    out = np.zeros(grid, bool)
    for k in range(f):
        frames = boxes[:1] if k == 0 else boxes[(k - 1) * step + 1 : k * step + 1]
        for x0, y0, x1, y1 in frames:
            if x1 > x0 and y1 > y0:  # an empty box: the face is out of view in that frame
                out[k, int(y0 // sy) : int(np.ceil(y1 / sy)), int(x0 // sx) : int(np.ceil(x1 / sx))] = True
    return out


def flow_matching_loss(model, text: TextEncoder, layout: TokenLayout, zv: torch.Tensor, za: torch.Tensor, tokens: torch.Tensor,
                       mask: torch.Tensor, sigma: torch.Tensor, noise_v: torch.Tensor, noise_a: torch.Tensor,
                       first_frame: torch.Tensor | None = None, append: tuple[torch.Tensor, int] | None = None,
                       weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified-flow MSE of the velocity on video and audio tokens (``x_s = (1-s) x0 + s n``, ``v = n - x0``).

    Latents ``zv (B, C, F, H, W)`` / ``za (B, C, T, M)``, noise of the same shapes; ``tokens``/``mask`` from
    ``TextEncoder.tokenize``. ``first_frame`` (bool, ``(B,)``) gives those clips' first latent frame clean, at
    timestep 0 and outside the video loss: image-to-video, as ltx-trainer's first-frame conditioning does it.
    ``append = (latent (B, C, 1, H, W), k)`` appends one clean latent frame per clip after the video tokens, at
    timestep 0, at the positions of the clip's latent frame ``k`` and outside the loss: a frame of the clip itself is
    ltx-core's keyframe conditioning; a frame of the same person from another shot at ``k = 0`` is the way an IC
    reference portrait enters (``ltxic.models.strategies``). ``weight`` ``(B, Nv)`` weighs the clip's video tokens
    (patchify order) in the video loss, a weighted mean: a face mask from :func:`face_token_mask` makes the face
    count more, or alone.
    """
    b = zv.shape[0]
    v0, na_v = _VIDEO_PATCHIFIER.patchify(zv), _VIDEO_PATCHIFIER.patchify(noise_v)
    a0, na_a = _AUDIO_PATCHIFIER.patchify(za), _AUDIO_PATCHIFIER.patchify(noise_a)
    s = sigma.view(b, 1, 1)
    t_video = sigma[:, None].expand(b, v0.shape[1])
    keep = None if weight is None else weight.to(v0.dtype)
    if first_frame is not None:  # patchify orders tokens (frame, row, column): the first H*W are the first frame
        clean = (torch.arange(v0.shape[1], device=v0.device) < zv.shape[3] * zv.shape[4])[None] & first_frame[:, None]
        t_video = torch.where(clean, 0.0, t_video)
        keep = (~clean).to(v0.dtype) * (1 if keep is None else keep)
    x_video = (1 - t_video[..., None]) * v0 + t_video[..., None] * na_v
    positions = layout.video_positions
    n_target = v0.shape[1]
    if append is not None:
        extra, k = _VIDEO_PATCHIFIER.patchify(append[0]), append[1]
        frame = slice(k * extra.shape[1], (k + 1) * extra.shape[1])  # patchify orders tokens (frame, row, column)
        x_video = torch.cat([x_video, extra.to(x_video.dtype)], 1)
        t_video = torch.cat([t_video, t_video.new_zeros(b, extra.shape[1])], 1)
        positions = torch.cat([positions, positions[:, :, frame]], 2)
    vctx, actx, mask = text.encode_tokens(tokens, mask)
    video_in = Modality(latent=x_video, sigma=sigma, timesteps=t_video,
                        positions=positions.expand(b, -1, -1, -1), context=vctx, context_mask=mask)
    audio_in = Modality(latent=(1 - s) * a0 + s * na_a, sigma=sigma, timesteps=sigma[:, None].expand(b, a0.shape[1]),
                        positions=layout.audio_positions.expand(b, -1, -1, -1), context=actx, context_mask=mask)
    pv, pa = model(video_in, audio_in, BatchedPerturbationConfig.empty(b))
    pv = pv[:, :n_target]
    if keep is None:
        video_loss = F.mse_loss(pv.float(), na_v - v0)
    else:
        per_token = (pv.float() - (na_v - v0)).square().mean(-1)
        video_loss = (per_token * keep).sum() / keep.sum().clamp(min=1)
    return video_loss, F.mse_loss(pa.float(), na_a - a0)


@torch.no_grad()
def fm_eval(model, text, layout: TokenLayout, zv, za, caps, device: str, other: torch.Tensor | None = None,
            face: torch.Tensor | None = None) -> dict[str, float]:
    """Flow-matching loss at fixed sigmas (0.1 .. 0.9) and fixed noise: comparable across runs and steps.

    Also with frame 0 appended clean, and with ``other`` (each clip's person in another shot) appended: the loss falls
    only as far as the base reads appended frames, and the person in them, which is what an IC reference asks. With
    ``face`` (each clip's :func:`face_token_mask`), the loss on the face's tokens alone, plain and with ``other``
    appended: the face is a small part of the frame, and reading the person shows there first."""
    model.eval(), text.eval()
    gen = torch.Generator().manual_seed(12345)
    tokens, mask = (t.to(device) for t in text.tokenize(caps))
    out_v, out_a, out_k, out_o, out_f, out_fo = [], [], [], [], [], []
    face_w = face.flatten(1).float().to(device) if face is not None else None
    for sig in (0.1, 0.3, 0.5, 0.7, 0.9):
        n = len(zv)
        nv = torch.randn(zv.shape, generator=gen).to(device)
        na = torch.randn(za.shape, generator=gen).to(device)
        args = (model, text, layout, zv.to(device), za.to(device), tokens, mask, torch.full((n,), sig, device=device), nv, na)
        lv, la = flow_matching_loss(*args)
        out_v.append(lv.item()), out_a.append(la.item())
        out_k.append(flow_matching_loss(*args, append=(zv[:, :, :1].to(device), 0))[0].item())
        if other is not None:
            out_o.append(flow_matching_loss(*args, append=(other.to(device), 0))[0].item())
        if face_w is not None:
            out_f.append(flow_matching_loss(*args, weight=face_w)[0].item())
            if other is not None:
                out_fo.append(flow_matching_loss(*args, append=(other.to(device), 0), weight=face_w)[0].item())
    model.train(), text.train()
    out = {"video_fm_loss": round(float(np.mean(out_v)), 5), "audio_fm_loss": round(float(np.mean(out_a)), 5),
           "video_fm_loss_frame0_appended": round(float(np.mean(out_k)), 5)}
    if out_o:
        out["video_fm_loss_other_shot_appended"] = round(float(np.mean(out_o)), 5)
    if out_f:
        out["video_fm_loss_face"] = round(float(np.mean(out_f)), 5)
    if out_fo:
        out["video_fm_loss_face_other_shot_appended"] = round(float(np.mean(out_fo)), 5)
    return out
