"""Flow-matching sampling of video and audio latents together, with IC references appended as in training.

``sample_latents`` returns latents; decoding, mp4 writing and the two-stage upscale live elsewhere.

Facts followed, with sources:

* Sigma schedule: ltx-core ``LTX2Scheduler.execute`` (``components/schedulers.py``): ``linspace(1, 0)``
  shifted by the token-count line through (1024, 0.95) and (4096, 2.05), then stretched so the last
  non-zero sigma is 0.1. ltx-pipelines call it without a latent (``ti2vid_one_stage.py`` and the others),
  which fixes the count at 4096; ltxic passes the target's video token count by default, the same count
  training used for its sigma shift (``SamplingConfig.schedule_tokens = 4096`` reproduces the pipelines).
  Distilled path: ``DISTILLED_SIGMA_VALUES`` from ``ltx_pipelines.utils.constants`` (8 steps).
* Steps: ltx-core ``EulerDiffusionStep`` on the denoised estimate ``x0 = x - v * sigma`` (``to_denoised``),
  as ``ltx_pipelines.utils.samplers.euler_denoising_loop`` does; the transformer predicts velocity.
* Reference tokens: ltx-pipelines keep them clean every step (denoise mask 0, ``post_process_latent``)
  and strip them before decoding (``clear_conditioning``). Here they are rebuilt clean at timestep 0 for
  every forward pass by the same ``Strategy.model_inputs`` the trainer uses, and never enter the state:
  the same inputs, with nothing to strip.
* Guidance: ltx-core's ``MultiModalGuider`` per stream (text CFG, STG, modality isolation, rescale), with the
  passes ltx-pipelines' ``multi_modal_guider_denoising_func`` runs: the conditional prediction, the negative
  prompt's, one with self-attention skipped in the STG blocks, one with the audio-video cross-attentions skipped
  (settings: :class:`ltxic.sampling.guidance.Guidance`). Every pass keeps the references; the rescale's standard
  deviations are taken over the target tokens.
* Identity (reference) guidance, ltxic's addition: ID-LoRA's inference adds ``scale * (cond - without
  references)`` after the text guidance (default 3 on the audio stream); ComfyUI's ``LTXVReferenceAudio`` the
  same. One extra pass without any reference serves both streams.
* Noise: drawn as ltx-core's ``GaussianNoiser`` draws it in ltx-pipelines (``denoise_audio_video``): one
  generator, the video state's tokens ``(B, tokens, C)`` first (the pipelines' state also holds the video
  reference tokens, so as many extra draws are made), then the audio tokens. The generator is a CPU
  ``torch.Generator`` seeded with ``config.seed`` (or the one passed, which the two-stage pipeline carries from
  stage 1 into stage 2 as the pipelines do), moved to the model's device: a seed gives the same noise everywhere.
  (ltx-pipelines draw on the model's device, so on a GPU their noise for a seed differs from ltxic's; on the CPU
  it is the same, and ``tests/test_guidance_parity.py`` compares there.)

Where ltxic differs from ltx-pipelines on purpose: the schedule's token count (above); ``skip_step`` (off in
LTX-2.3's parameters) reuses the last guided prediction as they do, but the passes of a partly skipped step still
compute both streams, where the pipelines switch the skipped stream's input off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, Perturbation, PerturbationConfig, PerturbationType
from ltx_core.utils import to_denoised
from ltxic.io.progress import progress as tqdm

from ltxic.models.latents import AudioGeometry, VideoGeometry, audio_from_tokens, audio_tokens, video_from_tokens, video_tokens
from ltxic.models.strategies import Conditioning, Strategy, get_strategy
from ltxic.sampling.guidance import Guidance, pipelines_constants


@dataclass
class SamplingConfig:
    """What to generate and how.

    Attributes:
        width, height, frames: output size in pixels and frames (``frames = 8k + 1``, sizes multiples of 32
            for the real VAE; see ``video_geometry``).
        fps: frame rate (video positions are in seconds).
        audio_seconds: audio length; ``None`` = ``frames / fps`` (as ltx-pipelines).
        steps: Euler steps of the LTX2Scheduler schedule (ignored when ``distilled``).
        distilled: use the distilled model's fixed 8-step sigma list.
        sigmas: an explicit descending schedule ending at 0 (e.g. ltx-pipelines' stage-2 list
            ``STAGE_2_DISTILLED_SIGMA_VALUES`` with an initial latent); overrides ``steps``/``distilled``.
        guidance: :class:`ltxic.sampling.guidance.Guidance` (text CFG, STG, modality, rescale per stream, and the
            identity-reference scales); default off (one forward pass per step).
        seed: noise seed.
        schedule_tokens: token count for the schedule's shift; ``None`` = the target's video tokens.
        audio_mel_bins: M of the audio latent ``(C, T, M)``; ``None`` = 16 for 128-wide audio (LTX-2's
            8 x 16 audio VAE), else 4 (the tiny 4 x 4 codec).
        generate_audio: sample the audio stream too (needs an audio-video model and an audio context).
        batch_guidance: run a step's guidance passes (conditional, negative prompt, STG, modality) as one batch
            through the transformer instead of one after another as ltx-pipelines do; the same sums in fewer,
            fuller kernels. Off by default: at LTX-2.3's 960x576x121 on one H200 it gained nothing (stage 1's 2160
            tokens already fill the GPU; ``benchmarks/results/side_by_side/``). ``None`` = off.
    """

    width: int = 96
    height: int = 64
    frames: int = 17
    fps: float = 24.0
    audio_seconds: float | None = None
    steps: int = 30
    distilled: bool = False
    sigmas: tuple[float, ...] | None = None
    guidance: Guidance = field(default_factory=Guidance.off)
    seed: int = 0
    schedule_tokens: int | None = None
    audio_mel_bins: int | None = None
    generate_audio: bool = True
    video_geometry: VideoGeometry = field(default_factory=VideoGeometry)
    audio_geometry: AudioGeometry = field(default_factory=AudioGeometry)
    batch_guidance: bool | None = None

    def video_latent_shape(self, batch: int, channels: int) -> tuple[int, int, int, int, int]:
        f, h, w = self.video_geometry.latent_size(self.frames, self.height, self.width)
        return (batch, channels, f, h, w)

    def audio_latent_shape(self, batch: int, width: int) -> tuple[int, int, int, int]:
        mel = self.audio_mel_bins if self.audio_mel_bins is not None else (16 if width == 128 else 4)
        if width % mel:
            raise ValueError(f"SamplingConfig.audio_mel_bins={mel} does not divide the model's audio width {width}")
        seconds = self.audio_seconds if self.audio_seconds is not None else self.frames / self.fps
        steps = round(seconds * self.audio_geometry.latents_per_second)
        if steps < 1:
            raise ValueError(f"SamplingConfig.audio_seconds={seconds} gives no audio latents; use a longer duration")
        return (batch, width // mel, steps, mel)


def sigma_schedule(config: SamplingConfig, video_tokens_count: int) -> torch.Tensor:
    """The sigmas (descending, ending at 0) for ``config``."""
    if config.sigmas is not None:
        sigmas = torch.tensor(config.sigmas, dtype=torch.float32)
        if sigmas.ndim != 1 or len(sigmas) < 2 or sigmas[-1] != 0 or not torch.all(sigmas[1:] < sigmas[:-1]) or sigmas[0] > 1:
            raise ValueError(
                f"SamplingConfig.sigmas={config.sigmas} must descend strictly from <= 1 and end at 0, e.g. (1.0, 0.5, 0.0)"
            )
        return sigmas
    if config.distilled:
        return torch.tensor(pipelines_constants().DISTILLED_SIGMA_VALUES, dtype=torch.float32)
    if config.steps < 2:
        # LTX2Scheduler stretches the last non-zero sigma to 0.1: with one step that sigma is 1 and it divides by 0
        raise ValueError(f"SamplingConfig.steps must be >= 2 for the LTX2Scheduler schedule, got {config.steps}; "
                         "for a single step pass sigmas=(1.0, 0.0)")
    tokens = config.schedule_tokens if config.schedule_tokens is not None else video_tokens_count
    # LTX2Scheduler reads only the shape of `latent`: prod(shape[2:]) tokens
    return LTX2Scheduler().execute(steps=config.steps, latent=torch.empty(1, 1, tokens, device="meta"))


def _model_widths(model: torch.nn.Module) -> tuple[int, int | None]:
    config = getattr(model, "ltxic_config", None)
    if config is not None:
        t = config["transformer"]
        return int(t["in_channels"]), int(t.get("audio_in_channels") or 0) or None
    audio = getattr(model, "audio_patchify_proj", None)
    return int(model.patchify_proj.in_features), (int(audio.in_features) if audio is not None else None)


@torch.no_grad()
def sample_latents(
    model: torch.nn.Module,
    video_context: torch.Tensor,
    audio_context: torch.Tensor | None = None,
    *,
    context_mask: torch.Tensor | None = None,
    negative_video_context: torch.Tensor | None = None,
    negative_audio_context: torch.Tensor | None = None,
    negative_context_mask: torch.Tensor | None = None,
    ref_video_latent: torch.Tensor | None = None,
    ref_audio_latent: torch.Tensor | None = None,
    initial_video_latent: torch.Tensor | None = None,
    initial_audio_latent: torch.Tensor | None = None,
    strategy: Strategy | str = "text_to_video",
    config: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate ``(video_latent (B, C, F, H, W), audio_latent (B, C, T, M) or None)``.

    Contexts are batched ``(B, L, D)``; references are batched latents, placed by ``strategy`` exactly
    as in training. LoRA strength is whatever the model carries (``ltxic.models.lora.set_lora_strength``).
    ``initial_*_latent`` start from a latent noised to the first sigma (``(1 - s0) x + s0 eps``, as
    ltx-core's ``GaussianNoiser`` with ``noise_scale = s0``): the refine stage of a two-stage pipeline.
    ``generator`` (a CPU generator) replaces the one seeded with ``config.seed``; it is advanced by the draws.
    """
    config = config or SamplingConfig()
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if ref_video_latent is not None and not strategy.uses_video_reference:
        raise ValueError(f"ref_video_latent was given but strategy '{strategy.name}' does not use it; pass strategy='ic' or 'audio_ref_only_ic'")
    if ref_audio_latent is not None and not strategy.uses_audio_reference:
        raise ValueError(f"ref_audio_latent was given but strategy '{strategy.name}' does not use it; pass strategy='audio_ref_only_ic'")
    guidance = config.guidance
    wants_audio = generate_audio_ok(config, audio_context)
    if (guidance.video.uses_text and negative_video_context is None) or (
        guidance.audio.uses_text and wants_audio and negative_audio_context is None
    ):
        raise ValueError(
            "text guidance (cfg != 1) needs negative_video_context / negative_audio_context (encode an empty or "
            "negative prompt), or set both streams' cfg to 1"
        )
    uses_refs = strategy.uses_video_reference or strategy.uses_audio_reference

    param = next(model.parameters())
    device, dtype = param.device, param.dtype if param.is_floating_point() else torch.float32
    batch = video_context.shape[0]
    video_width, audio_width = _model_widths(model)
    with_audio = wants_audio and audio_width is not None
    guide_v = MultiModalGuider(guidance.video.params())
    guide_a = MultiModalGuider(guidance.audio.params())
    ref_v_scale = guidance.reference_video if uses_refs else 0.0
    ref_a_scale = guidance.reference_audio if uses_refs and with_audio else 0.0

    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(config.seed)
    v_shape = config.video_latent_shape(batch, video_width)
    v_count = math.prod(v_shape[2:])
    sigmas = sigma_schedule(config, v_count)
    s0 = float(sigmas[0])
    sigmas = sigmas.to(device)
    # the pipelines' video state holds the reference tokens too: their noise is drawn (and discarded) as well
    v_extra = math.prod(ref_video_latent.shape[2:]) if ref_video_latent is not None and strategy.uses_video_reference else 0

    def start(shape: tuple[int, ...], tokens: int, extra: int, initial: torch.Tensor | None, name: str,
              to_tokens) -> tuple[torch.Tensor, torch.Tensor]:
        if initial is not None and tuple(initial.shape) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(initial.shape)} but the config asks for {tuple(shape)}; match SamplingConfig's size")
        clean, positions = to_tokens(torch.zeros(shape) if initial is None else initial.to(device).float())
        noise = torch.randn(batch, tokens + extra, clean.shape[-1], generator=gen)[:, :tokens].to(device)
        if initial is None:
            return noise.to(dtype=dtype), positions.to(device)
        # ltx-core GaussianNoiser with noise_scale = s0: noise * s0 + latent * (1 - s0)
        return (noise * s0 + clean.to(device) * (1 - s0)).to(dtype=dtype), positions.to(device)

    x_v, pos_v = start(v_shape, v_count, v_extra, initial_video_latent, "initial_video_latent",
                       lambda t: video_tokens(t, config.fps, config.video_geometry))
    x_a = pos_a = a_shape = None
    if with_audio:
        a_shape = config.audio_latent_shape(batch, audio_width)
        x_a, pos_a = start(a_shape, a_shape[2], 0, initial_audio_latent, "initial_audio_latent",
                           lambda t: audio_tokens(t, config.audio_geometry))

    def to_dev(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device=device, dtype=dtype if t.is_floating_point() else None)

    cond = Conditioning(
        video_context=to_dev(video_context),
        audio_context=to_dev(audio_context) if with_audio else None,
        context_mask=to_dev(context_mask),
        ref_video_latent=to_dev(ref_video_latent),
        ref_audio_latent=to_dev(ref_audio_latent),
        fps=config.fps,
    )
    negative = None
    if guidance.video.uses_text or (with_audio and guidance.audio.uses_text):
        negative = Conditioning(
            video_context=to_dev(negative_video_context if negative_video_context is not None else video_context),
            audio_context=to_dev(negative_audio_context if negative_audio_context is not None else audio_context) if with_audio else None,
            context_mask=to_dev(negative_context_mask),
            ref_video_latent=cond.ref_video_latent,
            ref_audio_latent=cond.ref_audio_latent,
            fps=config.fps,
        )
    plain = BatchedPerturbationConfig.empty(batch)
    stg = []
    if guide_v.do_perturbed_generation():
        stg.append(Perturbation(type=PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks=list(guidance.video.stg_blocks)))
    if with_audio and guide_a.do_perturbed_generation():
        stg.append(Perturbation(type=PerturbationType.SKIP_AUDIO_SELF_ATTN, blocks=list(guidance.audio.stg_blocks)))
    perturbed = BatchedPerturbationConfig([PerturbationConfig(stg)] * batch) if stg else None
    isolate = with_audio and (guide_v.do_isolated_modality_generation() or guide_a.do_isolated_modality_generation())
    isolated = BatchedPerturbationConfig([PerturbationConfig([
        Perturbation(type=PerturbationType.SKIP_A2V_CROSS_ATTN, blocks=None),
        Perturbation(type=PerturbationType.SKIP_V2A_CROSS_ATTN, blocks=None),
    ])] * batch) if isolate else None
    stepper = EulerDiffusionStep()

    # the guidance passes of a step: (conditioning, perturbations); the first is the conditional prediction
    passes = [(cond, plain)]
    if negative is not None:
        passes.append((negative, plain))
    if perturbed is not None:
        passes.append((cond, perturbed))
    if isolated is not None:
        passes.append((cond, isolated))
    batched = bool(config.batch_guidance)
    stacked = _stack_passes(passes) if batched and len(passes) > 1 else None

    def denoise(c: Conditioning, sigma: torch.Tensor, perturb: BatchedPerturbationConfig = plain,
                with_references: bool = True, copies: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Denoised target tokens; ``copies`` > 1 runs the state that many times over (``c`` stacked to match)."""
        xv, xa, pv, pa = x_v, x_a, pos_v, pos_a
        if copies > 1:
            xv, pv = _repeat(xv, copies), _repeat(pv, copies)
            if xa is not None:
                xa, pa = _repeat(xa, copies), _repeat(pa, copies)
        inputs = strategy.model_inputs(
            xv, xa, sigma.expand(batch * copies), pv, pa, c,
            with_references=with_references, target_video_shape=v_shape,
        )
        vel_v, vel_a = model(inputs.video, inputs.audio, perturb)
        den_v = to_denoised(xv, vel_v[:, : inputs.n_video], sigma)
        den_a = None if xa is None else to_denoised(xa, vel_a[:, : inputs.n_audio], sigma)
        return den_v, den_a

    def guidance_passes(sigma: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        if stacked is None:
            return [denoise(c, sigma, perturb) for c, perturb in passes]
        den_v, den_a = denoise(stacked[0], sigma, stacked[1], copies=len(passes))
        chunks_a = den_a.chunk(len(passes)) if den_a is not None else [None] * len(passes)
        return list(zip(den_v.chunk(len(passes)), chunks_a))

    last_v = last_a = None
    for i in tqdm(range(len(sigmas) - 1), desc="sampling", disable=not progress):
        sigma = sigmas[i]
        # should_skip_step(0) is False: every stream has a last prediction before it is first skipped
        skip_v, skip_a = guide_v.should_skip_step(i), guide_a.should_skip_step(i)
        if skip_v and (skip_a or x_a is None):
            out_v, out_a = last_v, last_a
        else:
            results = iter(guidance_passes(sigma))
            den_v, den_a = next(results)
            neg = next(results) if negative is not None else (0.0, 0.0)
            ptb = next(results) if perturbed is not None else (0.0, 0.0)
            mod = next(results) if isolated is not None else (0.0, 0.0)
            bare_v = bare_a = None
            if ref_v_scale != 0.0 or ref_a_scale != 0.0:
                bare_v, bare_a = denoise(cond, sigma, with_references=False)
            # a stream skipped on this step reuses its last guided prediction whole (identity term included)
            out_v = last_v if skip_v else guide_v.calculate(den_v, neg[0], ptb[0], mod[0])
            if not skip_v and bare_v is not None:
                out_v = out_v + ref_v_scale * (den_v - bare_v)
            out_a = None
            if den_a is not None:
                out_a = last_a if skip_a else guide_a.calculate(den_a, neg[1], ptb[1], mod[1])
                if not skip_a and bare_a is not None:
                    out_a = out_a + ref_a_scale * (den_a - bare_a)
            last_v, last_a = out_v, out_a
        x_v = stepper.step(x_v, out_v, sigmas, i)
        if x_a is not None:
            x_a = stepper.step(x_a, out_a, sigmas, i)

    video = video_from_tokens(x_v, v_shape)
    audio = audio_from_tokens(x_a, a_shape) if x_a is not None else None
    return video, audio


def _repeat(t: torch.Tensor, copies: int) -> torch.Tensor:
    return t.repeat(copies, *([1] * (t.ndim - 1)))


def _stack_passes(
    passes: list[tuple[Conditioning, BatchedPerturbationConfig]],
) -> tuple[Conditioning, BatchedPerturbationConfig] | None:
    """The passes' conditionings concatenated along the batch, and their perturbations in the same order.

    ``None`` when the conditionings cannot share a batch (prompt features of different lengths): the caller then
    runs the passes one by one.
    """
    conds = [c for c, _ in passes]

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(c, name) for c in conds]
        if all(v is None for v in values):
            return None
        if any(v is None for v in values) or len({tuple(v.shape) for v in values}) > 1:
            raise ValueError(name)
        return torch.cat(values)

    try:
        masks = [c.context_mask for c in conds]
        if any(m is not None for m in masks) and any(m is None for m in masks):
            shape = next(m for m in masks if m is not None).shape
            device = next(m for m in masks if m is not None).device
            conds = [c if c.context_mask is not None else replace(c, context_mask=torch.ones(shape, device=device, dtype=torch.long))
                     for c in conds]
        stacked = Conditioning(video_context=cat("video_context"), audio_context=cat("audio_context"),
                               context_mask=cat("context_mask"), ref_video_latent=cat("ref_video_latent"),
                               ref_audio_latent=cat("ref_audio_latent"), fps=conds[0].fps)
    except ValueError:
        return None
    return stacked, BatchedPerturbationConfig([p for _, perturb in passes for p in perturb.perturbations])


def generate_audio_ok(config: SamplingConfig, audio_context: torch.Tensor | None) -> bool:
    """Audio is sampled when asked for and an audio context is given."""
    return config.generate_audio and audio_context is not None


__all__ = ["SamplingConfig", "sample_latents", "sigma_schedule"]
