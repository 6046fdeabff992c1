"""How an encoded example becomes transformer inputs, in training and in sampling.

Three strategies share one code path (:meth:`Strategy.model_inputs`); the trainer and the sampler both
call it, so reference tokens enter the model the same way in both:

* ``text_to_video``: plain LoRA; only the target video and audio tokens.
* ``ic``: a reference image or video (latent ``(C, F_ref, h, w)``; an image is one latent frame) is
  appended as extra, clean tokens to the video stream.
* ``audio_ref_only_ic``: identity; the reference image goes into the video stream as in ``ic`` *and* the
  reference voice clip is appended as clean tokens to the audio stream.

Facts followed, with sources:

* Reference tokens are clean and carry per-token timestep 0, while the target tokens carry the sampled
  sigma; the ``Modality.sigma`` of the whole stream stays the target's sigma (ltx-trainer
  ``training_strategies/base_strategy.py`` ``_create_per_token_timesteps``, ``video_to_video.py``;
  ltx-core ``conditioning/types/reference_video_cond.py``: denoise mask ``1 - strength``, so timestep
  ``sigma * 0 = 0`` at strength 1).
* Reference video positions come from the reference's own latent grid (same patchifier, causal fix,
  time divided by fps), with the height and width bounds multiplied by ``reference_downscale_factor``;
  time is not scaled (``VideoConditionByReferenceLatent.apply_to``; ltx-trainer ``video_to_video.py``,
  which also requires the target size to be an exact multiple of the reference size).
* Reference audio sits at negative time: its own grid shifted by ``-(end of its last token + one latent
  duration)``, so it ends one latent (40 ms) before the target starts at 0 (ID-LoRA
  ``ID-LoRA-2.3/.../audio_ref_only_ic.py`` ``_get_negative_audio_positions``, enabled in its published
  configs ``configs/training_celebvhq.yaml`` via ``use_negative_ref_positions: true`` and used by its
  inference scripts; ComfyUI's ``LTXVReferenceAudio`` node is described as placing the reference before 0 too).
* The loss covers target tokens only; flow matching with ``x_s = (1 - s) x0 + s eps`` and velocity target
  ``eps - x0``; video and audio share one sigma per example; masked MSE per stream, summed
  (ltx-trainer ``text_to_video.py`` ``compute_loss``; ID-LoRA ``audio_ref_only_ic.py`` ``compute_loss``).
* Training sigmas: ltx-trainer's ``ShiftedLogitNormalTimestepSampler`` (``timestep_samplers.py``): a
  logit-normal with mean ``shift(tokens)``, std 1, stretched between its 0.5 % and 99.9 % points,
  small values reflected around ``eps``, mixed with 10 % uniform samples. ``shift`` interpolates
  linearly between 0.95 at 1024 tokens and 2.05 at 4096 tokens, the same line ltx-core's
  ``LTX2Scheduler`` (``components/schedulers.py``) uses for sampling; the token count is the target
  video's (the trainer calls ``sample_for(target_latents)`` before appending references).

Where ltxic chooses differently, and why:

* Order: Lightricks' trainer and ID-LoRA *prepend* references (``cat([ref, target])``), ltx-core's
  inference conditioning *appends* them. The transformer has no causal mask and RoPE depends only on the
  positions, so the order does not change the target outputs (``tests/test_strategies.py`` checks it);
  ltxic appends, like ltx-core, so the target is always ``tokens[:, :n_target]``.
* Identity from the face: ID-LoRA's ``audio_ref_only_ic`` takes the face from first-frame conditioning
  (``first_frame_conditioning_p: 0.9``); ltxic appends the reference portrait as IC tokens instead, because
  the portrait is not the first frame of the clip to generate (a first-frame condition pins the opening
  shot) and because ComfyUI's IC-LoRA guide nodes attach references exactly this way. Its default
  ``first_frame_conditioning_p`` is therefore 0; the other strategies default to ltx-trainer's 0.1
  (``base_strategy.py`` ``_create_first_frame_conditioning_mask``: a per-example draw, the first latent
  frame's tokens clean, at timestep 0 and outside the loss).
* ID-LoRA also masks video->reference-audio cross-attention and reference-audio->text attention in
  training (but not at inference). ltx-core 1.0.0's ``Modality`` has no fields for those masks, so ltxic
  keeps full attention in both training and sampling: no train/inference mismatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import ClassVar, Protocol

import torch
from ltx_core.components.schedulers import BASE_SHIFT_ANCHOR, MAX_SHIFT_ANCHOR
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality

from ltxic.models.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens

# LTX2Scheduler.execute defaults (ltx-core components/schedulers.py) and the trainer's sampler anchors.
BASE_SHIFT = 0.95
MAX_SHIFT = 2.05


# ----------------------------------------------------------------------------- data


@dataclass
class EncodedSample:
    """One training example after encoding (no batch dimension).

    Attributes:
        video_latent: ``(C, F, H, W)`` target video latent.
        video_context: ``(L, Dv)`` text context for the video stream.
        audio_context: ``(L, Da)`` text context for the audio stream (needed when there is audio).
        context_mask: ``(L,)`` 1 for real text tokens, 0 for padding; ``None`` = all real.
        audio_latent: ``(C, T, M)`` target audio latent, or ``None`` for video-only examples.
        ref_video_latent: ``(C, F_ref, h, w)`` reference image (``F_ref = 1``) or video latent.
        ref_audio_latent: ``(C, T_ref, M)`` reference voice latent.
        fps: frame rate of the target clip (video positions are in seconds).
    """

    video_latent: torch.Tensor
    video_context: torch.Tensor
    audio_context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    audio_latent: torch.Tensor | None = None
    ref_video_latent: torch.Tensor | None = None
    ref_audio_latent: torch.Tensor | None = None
    fps: float = 24.0


@dataclass
class EncodedBatch:
    """A batch of :class:`EncodedSample` (same fields with a leading batch dimension)."""

    video_latent: torch.Tensor
    video_context: torch.Tensor
    audio_context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    audio_latent: torch.Tensor | None = None
    ref_video_latent: torch.Tensor | None = None
    ref_audio_latent: torch.Tensor | None = None
    fps: float = 24.0

    @property
    def batch_size(self) -> int:
        return self.video_latent.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> EncodedBatch:
        """Move tensors; ``dtype`` applies to floating tensors only (masks keep theirs)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            moved[f.name] = value
        return EncodedBatch(**moved)

    def conditioning(self) -> Conditioning:
        return Conditioning(
            video_context=self.video_context,
            audio_context=self.audio_context,
            context_mask=self.context_mask,
            ref_video_latent=self.ref_video_latent,
            ref_audio_latent=self.ref_audio_latent,
            fps=self.fps,
        )


def collate(samples: list[EncodedSample]) -> EncodedBatch:
    """Stack samples into a batch; they must share shapes (one resolution bucket) and fps."""
    if not samples:
        raise ValueError("collate: got no samples; the dataset or bucket is empty")
    first = samples[0]
    out: dict[str, object] = {}
    for f in fields(EncodedSample):
        if f.name == "fps":
            rates = {s.fps for s in samples}
            if len(rates) > 1:
                raise ValueError(f"collate: field 'fps' differs within the batch ({sorted(rates)}); bucket clips by fps")
            out["fps"] = float(first.fps)
            continue
        values = [getattr(s, f.name) for s in samples]
        present = [v is not None for v in values]
        if not any(present):
            out[f.name] = None
            continue
        if not all(present):
            raise ValueError(
                f"collate: field '{f.name}' is set for {sum(present)} of {len(values)} samples; "
                "give every sample in a batch the same kinds of inputs (encode the missing ones, or batch them apart)"
            )
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(
                f"collate: field '{f.name}' has different shapes in one batch {sorted(shapes)}; "
                "use resolution buckets (and equal reference / text lengths) so a batch shares one shape"
            )
        out[f.name] = torch.stack(values)
    mask = out.get("context_mask")
    if isinstance(mask, torch.Tensor) and bool(mask.all()):
        # no padding (LTX-2.3's connector fills it with registers): no mask lets attention use flash kernels
        out["context_mask"] = None
    return EncodedBatch(**out)  # type: ignore[arg-type]


@dataclass
class Conditioning:
    """Everything besides the target latents that goes into the model (batched)."""

    video_context: torch.Tensor
    audio_context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    ref_video_latent: torch.Tensor | None = None
    ref_audio_latent: torch.Tensor | None = None
    fps: float = 24.0


@dataclass
class ModelInputs:
    """Transformer inputs for one forward pass; targets occupy the first ``n_video`` / ``n_audio`` tokens."""

    video: Modality
    audio: Modality | None
    n_video: int
    n_audio: int


# ----------------------------------------------------------------------------- sigmas


def sigma_shift(tokens: int | float) -> float:
    """LTX-2's token-count-dependent shift: linear through (1024, 0.95) and (4096, 2.05)."""
    slope = (MAX_SHIFT - BASE_SHIFT) / (MAX_SHIFT_ANCHOR - BASE_SHIFT_ANCHOR)
    return BASE_SHIFT + slope * (float(tokens) - BASE_SHIFT_ANCHOR)


def sample_sigmas(
    batch_size: int,
    tokens: int,
    generator: torch.Generator | None = None,
    *,
    std: float = 1.0,
    eps: float = 1e-3,
    uniform_prob: float = 0.1,
) -> torch.Tensor:
    """Training sigmas ``(batch_size,)`` on the generator's device: stretched, shifted logit-normal."""
    device = generator.device if generator is not None else torch.device("cpu")
    mu = sigma_shift(tokens)
    normal = torch.randn(batch_size, generator=generator, device=device) * std + mu
    low = 1.0 / (1.0 + math.exp(-(mu - 2.5758 * std)))  # 0.5th percentile of the logit-normal
    high = 1.0 / (1.0 + math.exp(-(mu + 3.0902 * std)))  # 99.9th percentile
    stretched = (torch.sigmoid(normal) - low) / (high - low)
    stretched = torch.where(stretched >= eps, stretched, 2 * eps - stretched).clamp(0.0, 1.0)
    uniform = (1 - eps) * torch.rand(batch_size, generator=generator, device=device) + eps
    pick_uniform = torch.rand(batch_size, generator=generator, device=device) < uniform_prob
    return torch.where(pick_uniform, uniform, stretched)


# ----------------------------------------------------------------------------- loss


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the tokens where ``mask`` (B, T) is true."""
    weights = mask.to(pred.dtype).unsqueeze(-1)
    denom = weights.sum() * pred.shape[-1]
    return ((pred - target) ** 2 * weights).sum() / denom.clamp(min=1.0)


def flow_matching_loss(
    video_pred: torch.Tensor,
    audio_pred: torch.Tensor | None,
    targets: tuple[torch.Tensor, torch.Tensor | None],
    loss_masks: tuple[torch.Tensor, torch.Tensor | None],
    *,
    video_weight: float = 1.0,
    audio_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the masked video and audio velocity losses, with the parts logged separately.

    The logs are 0-dim tensors on the loss's device: reading them is a host sync, which the trainer defers.
    """
    video_loss = masked_mse(video_pred, targets[0], loss_masks[0])
    loss = video_weight * video_loss
    logs = {"loss_video": video_loss.detach()}
    if audio_pred is not None and targets[1] is not None and loss_masks[1] is not None:
        audio_loss = masked_mse(audio_pred, targets[1], loss_masks[1])
        loss = loss + audio_weight * audio_loss
        logs["loss_audio"] = audio_loss.detach()
    logs["loss"] = loss.detach()
    return loss, logs


# ----------------------------------------------------------------------------- strategies


class Strategy(Protocol):
    """What the trainer and the sampler need from a strategy."""

    name: str
    reference_downscale_factor: int
    per_sample_noise: bool  # loss() also takes a list of generators, one per sample
    uses_video_reference: bool
    uses_audio_reference: bool

    def model_inputs(
        self,
        video_x: torch.Tensor,
        audio_x: torch.Tensor | None,
        sigma: torch.Tensor,
        video_positions: torch.Tensor,
        audio_positions: torch.Tensor | None,
        cond: Conditioning,
        *,
        with_references: bool = True,
        target_video_shape: tuple[int, ...] | None = None,
    ) -> ModelInputs: ...

    def training_step_inputs(
        self, batch: EncodedBatch, sigmas: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[Modality, Modality | None, tuple[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]: ...

    def loss(
        self, model: torch.nn.Module, batch: EncodedBatch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


@dataclass
class _ReferenceStrategy:
    """Shared implementation; subclasses say which references they append."""

    reference_downscale_factor: int = 1
    per_sample_noise: ClassVar[bool] = True
    # Per example, the chance that the target's first latent frame is given clean (timestep 0, no loss):
    # the LoRA keeps the base's image-to-video ability (ltx-trainer's default 0.1).
    first_frame_conditioning_p: float = 0.0
    video_loss_weight: float = 1.0
    audio_loss_weight: float = 1.0
    video_geometry: VideoGeometry = VideoGeometry()
    audio_geometry: AudioGeometry = AudioGeometry()

    name: ClassVar[str] = ""
    uses_video_reference: ClassVar[bool] = False
    uses_audio_reference: ClassVar[bool] = False

    def __post_init__(self) -> None:
        factor = self.reference_downscale_factor
        if int(factor) != factor or factor < 1:
            raise ValueError(
                f"reference_downscale_factor must be a whole number >= 1 (target size / reference size), got {factor!r}"
            )
        self.reference_downscale_factor = int(factor)
        if not 0.0 <= self.first_frame_conditioning_p <= 1.0:
            raise ValueError(
                f"first_frame_conditioning_p must be a probability in [0, 1], got {self.first_frame_conditioning_p!r}"
            )

    # -- references

    def reference_video(self, ref: torch.Tensor, target_shape: tuple[int, ...], fps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and target-grid positions of a ``(B, C, F_ref, h, w)`` reference latent."""
        if ref.ndim != 5:
            raise ValueError(
                f"ref_video_latent must be (B, C, F_ref, h, w) (an image is one latent frame), got shape {tuple(ref.shape)}"
            )
        factor = self.reference_downscale_factor
        _, channels, _, height, width = target_shape
        if ref.shape[1] != channels:
            raise ValueError(f"ref_video_latent has {ref.shape[1]} channels but the target video latent has {channels}")
        if (ref.shape[3] * factor, ref.shape[4] * factor) != (height, width):
            raise ValueError(
                f"ref_video_latent is {ref.shape[3]}x{ref.shape[4]} latents but the target is {height}x{width} with "
                f"reference_downscale_factor={factor}: encode the reference at 1/{factor} of the target resolution "
                f"({height // factor}x{width // factor} latents), or set reference_downscale_factor to the real ratio"
            )
        tokens, positions = video_tokens(ref, fps, self.video_geometry)
        if factor != 1:
            positions = positions.clone()
            positions[:, 1:3] *= factor  # height and width bounds; time stays
        return tokens, positions

    def reference_audio(self, ref: torch.Tensor, target_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and negative-time positions of a ``(B, C, T_ref, M)`` reference voice latent."""
        if ref.ndim != 4:
            raise ValueError(f"ref_audio_latent must be (B, C, T_ref, M), got shape {tuple(ref.shape)}")
        tokens, positions = audio_tokens(ref, self.audio_geometry)
        if tokens.shape[-1] != target_channels:
            raise ValueError(
                f"ref_audio_latent has C*M = {tokens.shape[-1]} but the audio stream expects {target_channels}; "
                "encode the reference voice with the same audio codec as the targets"
            )
        end = positions[:, :, -1, 1].amax()
        return tokens, positions - (end + 1.0 / self.audio_geometry.latents_per_second)

    # -- the one assembly path

    def model_inputs(
        self,
        video_x: torch.Tensor,
        audio_x: torch.Tensor | None,
        sigma: torch.Tensor,
        video_positions: torch.Tensor,
        audio_positions: torch.Tensor | None,
        cond: Conditioning,
        *,
        with_references: bool = True,
        target_video_shape: tuple[int, ...] | None = None,
    ) -> ModelInputs:
        """Append this strategy's clean reference tokens after the target tokens and build both Modalities.

        ``video_x`` ``(B, Tv, C)`` / ``audio_x`` ``(B, Ta, D)`` are the target tokens at noise level
        ``sigma`` ``(B,)``; target tokens get timestep ``sigma``, reference tokens 0.
        ``target_video_shape`` is the unpatchified target shape (needed to check a video reference).
        """
        batch, n_video = video_x.shape[:2]
        sigma = sigma.to(device=video_x.device, dtype=video_x.dtype).reshape(batch)
        v_lat, v_pos = [video_x], [video_positions]
        v_time = [sigma[:, None].expand(batch, n_video)]
        if with_references and self.uses_video_reference:
            if cond.ref_video_latent is None:
                raise ValueError(
                    f"strategy '{self.name}' needs ref_video_latent (the encoded reference image or video); "
                    "pass it, or use strategy 'text_to_video'"
                )
            if target_video_shape is None:
                raise ValueError("model_inputs: target_video_shape is needed to place a video reference")
            r_tok, r_pos = self.reference_video(cond.ref_video_latent.to(video_x.dtype), target_video_shape, cond.fps)
            v_lat.append(r_tok)
            v_pos.append(r_pos)
            v_time.append(torch.zeros(batch, r_tok.shape[1], device=video_x.device, dtype=video_x.dtype))
        mask = cond.context_mask.long() if cond.context_mask is not None else None
        video = Modality(
            latent=torch.cat(v_lat, dim=1),
            sigma=sigma,
            timesteps=torch.cat(v_time, dim=1),
            positions=torch.cat(v_pos, dim=2),
            context=cond.video_context,
            context_mask=mask,
        )
        audio = None
        n_audio = 0
        if audio_x is not None:
            if cond.audio_context is None or audio_positions is None:
                raise ValueError("audio tokens need audio_context (the text encoder's audio stream) and audio positions")
            n_audio = audio_x.shape[1]
            a_lat, a_pos = [audio_x], [audio_positions]
            a_time = [sigma[:, None].expand(batch, n_audio)]
            if with_references and self.uses_audio_reference:
                if cond.ref_audio_latent is None:
                    raise ValueError(
                        f"strategy '{self.name}' needs ref_audio_latent (the encoded reference voice clip); "
                        "pass it, or use strategy 'ic' for a face-only reference"
                    )
                r_tok, r_pos = self.reference_audio(cond.ref_audio_latent.to(audio_x.dtype), audio_x.shape[-1])
                a_lat.append(r_tok)
                a_pos.append(r_pos)
                a_time.append(torch.zeros(batch, r_tok.shape[1], device=audio_x.device, dtype=audio_x.dtype))
            audio = Modality(
                latent=torch.cat(a_lat, dim=1),
                sigma=sigma,
                timesteps=torch.cat(a_time, dim=1),
                positions=torch.cat(a_pos, dim=2),
                context=cond.audio_context,
                context_mask=mask,
            )
        return ModelInputs(video=video, audio=audio, n_video=n_video, n_audio=n_audio)

    # -- training

    def training_step_inputs(
        self, batch: EncodedBatch, sigmas: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor | None],
        first_frame: torch.Tensor | None = None,
    ) -> tuple[Modality, Modality | None, tuple[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]:
        """Noised inputs, full-length velocity targets and token loss masks (False on reference tokens).

        ``noise`` holds ``(video_noise, audio_noise)`` shaped like the target latents. ``first_frame`` ``(B,)``
        bool: these examples get their first latent frame clean, at timestep 0 and outside the loss.
        """
        x0_v, pos_v = video_tokens(batch.video_latent, batch.fps, self.video_geometry)
        eps_v, _ = video_tokens(noise[0].to(x0_v), batch.fps, self.video_geometry)
        s = sigmas.to(x0_v).reshape(-1, 1, 1)
        x0_a = eps_a = pos_a = None
        if batch.audio_latent is not None:
            if noise[1] is None:
                raise ValueError("training_step_inputs: the batch has audio_latent, so noise must include audio noise")
            x0_a, pos_a = audio_tokens(batch.audio_latent, self.audio_geometry)
            eps_a, _ = audio_tokens(noise[1].to(x0_a), self.audio_geometry)
        inputs = self.model_inputs(
            (1 - s) * x0_v + s * eps_v,
            None if x0_a is None else (1 - s) * x0_a + s * eps_a,
            sigmas,
            pos_v,
            pos_a,
            batch.conditioning(),
            target_video_shape=tuple(batch.video_latent.shape),
        )
        targets_masks = [self._pad(eps_v - x0_v, inputs.video.latent.shape[1])]
        if inputs.audio is not None:
            targets_masks.append(self._pad(eps_a - x0_a, inputs.audio.latent.shape[1]))
        else:
            targets_masks.append((None, None))
        (t_v, m_v), (t_a, m_a) = targets_masks
        video = inputs.video
        if first_frame is not None and bool(first_frame.any()):
            # the patchifier orders tokens frame by frame: the first H*W are latent frame 0
            n_first = batch.video_latent.shape[3] * batch.video_latent.shape[4]
            clean = torch.zeros_like(m_v)
            clean[:, :n_first] = first_frame.to(clean.device).reshape(-1, 1)
            n = x0_v.shape[1]
            video = replace(
                video,
                latent=torch.cat([torch.where(clean[:, :n, None], x0_v, video.latent[:, :n]), video.latent[:, n:]], dim=1),
                timesteps=video.timesteps.masked_fill(clean, 0.0),
            )
            m_v = m_v & ~clean
        return video, inputs.audio, (t_v, t_a), (m_v, m_a)

    @staticmethod
    def _pad(target: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero targets for the appended reference slots and a mask that is true on target tokens only."""
        batch, n, dim = target.shape
        full = torch.zeros(batch, total, dim, device=target.device, dtype=target.dtype)
        full[:, :n] = target
        mask = torch.zeros(batch, total, dtype=torch.bool, device=target.device)
        mask[:, :n] = True
        return full, mask

    def loss(
        self, model: torch.nn.Module, batch: EncodedBatch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One flow-matching loss on ``batch``: sigmas and noise drawn from ``generator``.

        ``generator`` may also be a list with one generator per sample: each sample's sigma, noise and first-frame
        draw then come from its own generator (in that order, as a batch of one draws them), so the result does not
        depend on how samples are grouped into batches (what multi-process training needs).
        """
        tokens = math.prod(batch.video_latent.shape[2:])
        if isinstance(generator, (list, tuple)):
            if len(generator) != batch.batch_size:
                raise ValueError(f"got {len(generator)} generators for a batch of {batch.batch_size}; pass one per sample")
            return self._loss(model, batch, tokens, [(g, 1) for g in generator])
        return self._loss(model, batch, tokens, [(generator, batch.batch_size)])

    def _loss(
        self, model: torch.nn.Module, batch: EncodedBatch, tokens: int, draws: list[tuple[torch.Generator | None, int]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        device = draws[0][0].device if draws[0][0] is not None else torch.device("cpu")
        sigma_parts, v_parts, a_parts, ff_parts = [], [], [], []
        for gen, n in draws:  # each generator draws sigma, video noise, audio noise, first frame: a batch's order
            sigma_parts.append(sample_sigmas(n, tokens, gen))
            v_parts.append(torch.randn((n, *batch.video_latent.shape[1:]), generator=gen, device=device))
            if batch.audio_latent is not None:
                a_parts.append(torch.randn((n, *batch.audio_latent.shape[1:]), generator=gen, device=device))
            if self.first_frame_conditioning_p > 0:  # drawn only when used: runs without it keep their random stream
                ff_parts.append(torch.rand(n, generator=gen, device=device) < self.first_frame_conditioning_p)
        sigmas = torch.cat(sigma_parts)
        v_noise = torch.cat(v_parts)
        a_noise = torch.cat(a_parts) if a_parts else None
        target_device = batch.video_latent.device
        first_frame = torch.cat(ff_parts) if ff_parts else None
        video, audio, targets, masks = self.training_step_inputs(
            batch,
            sigmas.to(target_device),
            (v_noise.to(target_device), None if a_noise is None else a_noise.to(target_device)),
            first_frame=None if first_frame is None else first_frame.to(target_device),
        )
        v_pred, a_pred = model(video, audio, BatchedPerturbationConfig.empty(batch.batch_size))
        loss, logs = flow_matching_loss(
            v_pred, a_pred, targets, masks, video_weight=self.video_loss_weight, audio_weight=self.audio_loss_weight
        )
        logs["sigma"] = sigmas.mean().detach()
        return loss, logs

    def checkpoint_metadata(self) -> dict[str, str]:
        """What an inference loader needs to place references the way training did."""
        meta = {"ltxic_strategy": self.name}
        if self.uses_video_reference:
            # the key ltx-pipelines' ic_lora.py and ComfyUI's IC-LoRA nodes read
            meta["reference_downscale_factor"] = str(self.reference_downscale_factor)
        return meta


@dataclass
class TextToVideoStrategy(_ReferenceStrategy):
    """Plain LoRA: target video and audio tokens only; references in the batch are ignored."""

    name: ClassVar[str] = "text_to_video"


@dataclass
class ICStrategy(_ReferenceStrategy):
    """IC-LoRA: a reference image or video latent appended to the video stream."""

    name: ClassVar[str] = "ic"
    uses_video_reference: ClassVar[bool] = True


@dataclass
class AudioRefOnlyICStrategy(_ReferenceStrategy):
    """Identity IC-LoRA: reference image tokens in the video stream and reference voice tokens in the audio stream."""

    name: ClassVar[str] = "audio_ref_only_ic"
    uses_video_reference: ClassVar[bool] = True
    uses_audio_reference: ClassVar[bool] = True


STRATEGIES: dict[str, type[_ReferenceStrategy]] = {
    cls.name: cls for cls in (TextToVideoStrategy, ICStrategy, AudioRefOnlyICStrategy)
}


def get_strategy(name: str, reference_downscale_factor: int = 1, **options: object) -> _ReferenceStrategy:
    """The strategy called ``name`` (``text_to_video``, ``ic`` or ``audio_ref_only_ic``)."""
    if name not in STRATEGIES:
        raise ValueError(f"training_strategy name {name!r} is unknown; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](reference_downscale_factor=reference_downscale_factor, **options)  # type: ignore[arg-type]


__all__ = [
    "AudioRefOnlyICStrategy",
    "Conditioning",
    "EncodedBatch",
    "EncodedSample",
    "ICStrategy",
    "ModelInputs",
    "STRATEGIES",
    "Strategy",
    "TextToVideoStrategy",
    "collate",
    "flow_matching_loss",
    "get_strategy",
    "masked_mse",
    "sample_sigmas",
    "sigma_shift",
]
