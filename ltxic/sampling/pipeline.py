"""Two-stage generation for the real model: half resolution with the IC-LoRA, spatial upscale x2, refine.

Stage 1 samples video and audio at half the target width and height with the base model plus the
identity IC-LoRA and the references. ltx-core's ``LatentUpsampler`` doubles the video latent's height and
width. Stage 2 re-noises the upscaled video latent (and the stage-1 audio latent) to the first sigma of a
short schedule and refines them at full resolution with the distilled LoRA. Each model is moved onto the
GPU only for its stage and back to ``offload_device`` afterwards; the VAE decode can be tiled.

Facts followed, with sources (ltx-pipelines 1.0.0 ``ic_lora.py`` ``ICLoraPipeline.__call__``,
``ti2vid_two_stages.py``; ltx-core 1.0.0 ``model/upsampler``):

* Stage 1 output shape ``width // 2 x height // 2`` with all frames; references are encoded at the
  stage-1 size divided by ``reference_downscale_factor`` (``_create_conditionings(height=stage_1 ...)``).
* Upscale: ``upsample_video(latent, video_encoder, upsampler)`` un-normalizes with the video encoder's
  per-channel statistics, runs the upsampler and normalizes again (``model/upsampler/model.py``).
* Stage 2 sigmas ``STAGE_2_DISTILLED_SIGMA_VALUES = [0.909375, 0.725, 0.421875, 0.0]``
  (``utils/constants.py``), initial latents = upscaled video and stage-1 audio, noise scale = first sigma;
  no CFG in stage 2 (``simple_denoising_func``).
* Stage 2 model: ``ti2vid_two_stages.py`` adds the distilled LoRA to the stage-1 model
  (``with_additional_loras``); ``ic_lora.py`` refines *without* the IC-LoRA and without the IC reference
  (its stage-2 ledger has ``loras=[]`` and only image conditionings). ltxic follows ``ic_lora.py``: stage 2
  is base + distilled LoRA, no references. With one transformer object for both stages the LoRA is swapped
  in place (``ltxic.models.lora.load_lora`` replaces the adapters), so only one base copy is in memory.
* Tiling: ``decode_video(..., tiling_config)`` calls ``VideoDecoder.tiled_decode`` and yields temporal
  chunks (``model/video_vae/video_vae.py``); ``TilingConfig.default()`` is 512 px tiles with 64 px overlap
  and 64-frame chunks with 24 frames overlap. Checked here: ltx-core 1.0.0's ``tiled_decode`` fails with a
  spatial-only config (its temporal slice is ``None``) and with a 16x-spatial decoder (tile sizes mismatch),
  so the hook requires both configs and a 32x VAE (the real one; the tiny codec decodes whole clips).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ltxic.data.dataset import ConsentRecord
from ltxic.sampling.generate import check_resolution, lora_settings, to_uint8_frames
from ltxic.models.kit import Models
from ltxic.models.lora import load_lora, lora_modules, set_lora_strength
from ltxic.io.profiling import StageClock
from ltxic.sampling.references import prepare_reference_audio, prepare_reference_image
from ltxic.sampling.guidance import Guidance, kit_negative_prompt, kit_steps
from ltxic.sampling.sampler import SamplingConfig, sample_latents
from ltxic.models.strategies import get_strategy

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]

# ltx-pipelines utils/constants.py
STAGE_2_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)


def tiny_upsampler_config(in_channels: int = 16) -> dict[str, Any]:
    """A small config for ltx-core's ``LatentUpsampler`` (GroupNorm needs 32 | mid_channels)."""
    return {"in_channels": in_channels, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
            "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False}


def build_upsampler(config: dict[str, Any], seed: int = 0) -> nn.Module:
    """ltx-core ``LatentUpsampler`` from a config dict (random weights, seeded)."""
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LatentUpsamplerConfigurator.from_config(config).eval()


@dataclass
class StageLog:
    name: str
    video_shape: tuple[int, ...]
    audio_shape: tuple[int, ...] | None
    device: str


@dataclass
class TwoStageResult:
    stage1_video_latent: torch.Tensor
    upscaled_video_latent: torch.Tensor
    video_latent: torch.Tensor
    audio_latent: torch.Tensor | None
    frames: np.ndarray
    waveform: torch.Tensor | None
    sample_rate: int
    fps: float
    stages: list[StageLog] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write(self, path: PathLike) -> Path:
        """The clip as an mp4 with its audio track."""
        from ltxic.io.media import write_video

        return write_video(path, self.frames, self.fps, self.waveform, self.sample_rate)


@dataclass
class TwoStagePipeline:
    """Base model + IC-LoRA at half resolution, ``upsampler`` x2, base (+ distilled LoRA) refine.

    ``upsampler`` and ``distilled_lora`` default to the kit's (``Models.ltx23(spatial_upsampler=...,
    distilled_lora=...)``). ``stage2_transformer`` defaults to ``models.transformer`` (LoRA swapped between
    stages). ``device`` is where each stage runs; ``offload_device`` where idle models wait (``None`` keeps
    everything on ``device``). Parts that the kit builds on demand (the LTX-2.3 encoders) are freed instead.
    """

    models: Models
    upsampler: nn.Module | None = None
    ic_lora: PathLike | None = None
    distilled_lora: PathLike | None = None
    stage2_transformer: nn.Module | None = None
    ic_lora_strength: float = 1.0
    distilled_lora_strength: float = 1.0
    device: torch.device | str = "cpu"
    offload_device: torch.device | str | None = "cpu"
    tiling: Any = None  # ltx_core.model.video_vae.TilingConfig, or None for a whole-clip decode
    stage2_sigmas: tuple[float, ...] = STAGE_2_SIGMAS
    clock: StageClock | None = None  # time and peak memory per stage, when given

    def _on(self, module: nn.Module) -> nn.Module:
        return module.to(self.device)

    def _off(self, module: Any) -> None:
        release = getattr(module, "release", None)
        if release is not None and not isinstance(module, nn.Module):
            release()  # built on demand (ltxic.models.ltx23): free it, it is rebuilt when needed
        elif self.offload_device is not None:
            module.to(self.offload_device)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @contextlib.contextmanager
    def _stage(self, name: str) -> Any:
        """Time the stage (when a clock is given); an out-of-memory error says which stage ran out and what to change."""
        try:
            with self.clock(name) if self.clock is not None else contextlib.nullcontext():
                yield
        except torch.OutOfMemoryError as err:
            raise torch.OutOfMemoryError(
                f"out of memory in the {name!r} stage of the two-stage pipeline on {self.device}. Lower the size "
                "(--width/--height/--frames), use fp8 transformer weights (--fp8), stream Gemma from host memory "
                "(--offload-text-encoder), or use a card with more memory."
            ) from err

    def _encode_references(self, strategy: Any, strategy_name: str, factor: int, reference_image: PathLike | None,
                           reference_audio: PathLike | None, consent: Any, identity: str | None, width: int, height: int,
                           notes: list[str]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Reference latents at the stage-1 size / factor (face) and the voice, consent checked."""
        m = self.models
        ref_v = ref_a = None
        if strategy.uses_video_reference:
            if reference_image is None:
                raise ValueError(f"the IC-LoRA's strategy {strategy_name!r} needs reference_image")
            img = prepare_reference_image(reference_image, width // 2 // factor, height // 2 // factor, consent=consent, identity=identity)
            notes += img.notes
            codec = self._on(m.video_codec)
            ref_v = codec.encode(img.pixels.to(self.device))
            self._off(codec)
        if strategy.uses_audio_reference:
            if reference_audio is None:
                raise ValueError(f"the IC-LoRA's strategy {strategy_name!r} needs reference_audio")
            voice = prepare_reference_audio(reference_audio, m.audio_codec.geometry.sample_rate, consent=consent, identity=identity)
            notes += voice.notes
            codec = self._on(m.audio_codec)
            ref_a = codec.encode(voice.waveform.to(self.device))
            self._off(codec)
        return ref_v, ref_a

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        *,
        reference_image: PathLike | None = None,
        reference_audio: PathLike | None = None,
        consent: ConsentRecord | dict[str, Any] | None = None,
        identity: str | None = None,
        width: int = 256,
        height: int = 256,
        frames: int = 25,
        fps: float = 24.0,
        seed: int = 0,
        stage1_steps: int | None = None,
        stage1_distilled: bool = False,
        guidance: Guidance | None = None,
        negative_prompt: str | None = None,
        schedule_tokens: int | None = None,
        batch_guidance: bool | None = None,
    ) -> TwoStageResult:
        """One clip. ``stage1_steps`` and ``guidance`` (stage 1; stage 2 is unguided, as in ltx-pipelines) default to
        the kit's (:func:`ltxic.sampling.guidance.kit_steps`, :meth:`Guidance.for_kit`), ``negative_prompt`` too
        (:func:`ltxic.sampling.guidance.kit_negative_prompt`); ``schedule_tokens`` as in
        :class:`ltxic.sampling.sampler.SamplingConfig` (4096 = ltx-pipelines' schedule), ``batch_guidance`` too.

        ``stage1_distilled``: the kit's checkpoint is LTX-2.3's distilled model. Stage 1 runs its 8 fixed sigmas and
        stage 2 refines with the same model and no distilled LoRA (the IC-LoRA switched off), as ltx-pipelines'
        ``ICLoraPipeline`` does with its two ledgers of the one distilled checkpoint."""
        m = self.models
        guidance = guidance if guidance is not None else Guidance.for_kit(m.name)
        stage1_steps = stage1_steps if stage1_steps is not None else kit_steps(m.name)
        negative_prompt = negative_prompt if negative_prompt is not None else kit_negative_prompt(m.name)
        distilled_lora = self.distilled_lora if self.distilled_lora is not None else m.distilled_lora
        if stage1_distilled:
            distilled_lora = None  # the model is distilled already
        if self.upsampler is None and not m.has_upsampler:
            raise ValueError("two stages need the spatial upsampler: Models.ltx23(spatial_upsampler=...) or "
                             "TwoStagePipeline(upsampler=...); fetch it with `ltxic download --only spatial-upscaler`")
        vgeo, ageo = m.video_codec.geometry, m.audio_codec.geometry
        strategy_name, factor = "text_to_video", 1
        if self.ic_lora is not None:
            settings = lora_settings(self.ic_lora)
            factor = settings["reference_downscale_factor"]
            strategy_name = settings["strategy"] or ("audio_ref_only_ic" if reference_audio else "ic")
        strategy = get_strategy(strategy_name, factor, video_geometry=vgeo, audio_geometry=ageo)
        if width % 2 or height % 2:
            raise ValueError(f"width {width} and height {height} must be even: stage 1 runs at half of each")
        try:
            check_resolution(width // 2, height // 2, frames, vgeo, factor if strategy.uses_video_reference else 1)
        except ValueError as err:
            raise ValueError(f"stage 1 runs at {width // 2}x{height // 2}: {err} (for the full size, double the suggested width and height)") from err
        check_resolution(width, height, frames, vgeo)
        if self.tiling is not None:
            if vgeo.spatial != 32:
                raise ValueError(
                    f"tiling: ltx-core's tiled VAE decode maps tiles with the real VAE's 32x spatial compression, but "
                    f"this video codec compresses {vgeo.spatial}x; decode whole clips (tiling=None) with it"
                )
            if getattr(self.tiling, "temporal_config", None) is None or getattr(self.tiling, "spatial_config", None) is None:
                raise ValueError("tiling: ltx-core 1.0.0's tiled_decode needs both spatial_config and temporal_config; "
                                 "use TilingConfig.default() or give both")
        stages: list[StageLog] = []
        notes: list[str] = []

        # text and references first, so the transformer is not on the GPU beside the encoders
        with self._stage("text encode"):
            encoder = self._on(m.text_encoder)
            texts = [prompt, negative_prompt] if guidance.uses_text else [prompt]
            encoded = encoder.encode_each(texts, release=True)  # LTX-2.3's frees Gemma before building its connectors
            (v_ctx, a_ctx, mask), neg = encoded[0], (encoded[1] if guidance.uses_text else (None, None, None))
            self._off(encoder)
        ref_v = ref_a = None
        with self._stage("reference encode"):
            ref_v, ref_a = self._encode_references(strategy, strategy_name, factor, reference_image, reference_audio,
                                                   consent, identity, width, height, notes)

        common = dict(fps=fps, frames=frames, video_geometry=vgeo, audio_geometry=ageo,
                      audio_mel_bins=getattr(m.audio_codec, "latent_mel_bins", None))
        # stage 1: half resolution, base + IC-LoRA, references (loading timed apart, as ltx-pipelines load between stages)
        with self._stage("stage 1 load"):
            model = m.transformer
            if self.ic_lora is not None:
                load_lora(model, self.ic_lora, strength=self.ic_lora_strength)
            model = self._on(model)
        with self._stage("stage 1"):
            cfg1 = SamplingConfig(width=width // 2, height=height // 2, steps=stage1_steps, distilled=stage1_distilled, seed=seed,
                                  guidance=guidance, schedule_tokens=schedule_tokens, batch_guidance=batch_guidance, **common)
            # one noise stream for both stages, as ltx-pipelines' GaussianNoiser
            generator = torch.Generator(device="cpu").manual_seed(seed)
            video1, audio1 = sample_latents(
                model, v_ctx, a_ctx, context_mask=mask, negative_video_context=neg[0], negative_audio_context=neg[1],
                negative_context_mask=neg[2], ref_video_latent=ref_v, ref_audio_latent=ref_a, strategy=strategy, config=cfg1,
                generator=generator,
            )
        stages.append(StageLog("stage1", tuple(video1.shape), None if audio1 is None else tuple(audio1.shape), str(self.device)))
        # as ltx-pipelines: stage 2 gets a model of its own with the distilled LoRA fused into its weights, so the
        # stage-1 model (and its IC-LoRA adapters) leaves the card now, before the upsampler comes on
        fused = distilled_lora is not None and self.stage2_transformer is None and m.can_fuse_loras
        if fused:
            del model
            m.release_transformer()  # the next prompt rebuilds the base
        elif self.stage2_transformer is not None:
            self._off(model)

        # spatial upscale x2 (ltx-core upsample_video: un-normalize, upsample, normalize)
        from ltx_core.model.upsampler import upsample_video

        with self._stage("upsample"):
            codec = self._on(m.video_codec)
            up = self._on(self.upsampler if self.upsampler is not None else m.upsampler)
            upscaled = upsample_video(video1.to(self.device), codec.encoder, up)
            if self.upsampler is None and self.offload_device is None:
                del up
                m.release_upsampler()  # built on demand: freed, so it does not sit beside the stage-2 model
            else:
                self._off(up)
            self._off(codec)
        stages.append(StageLog("upscale", tuple(upscaled.shape), None, str(self.device)))

        # stage 2: full resolution refine, base + distilled LoRA, no references
        with self._stage("stage 2 load"):
            if fused:
                model2 = m.transformer_with_loras([(distilled_lora, self.distilled_lora_strength)])
            else:
                model2 = self.stage2_transformer if self.stage2_transformer is not None else model
                if distilled_lora is not None:
                    load_lora(model2, distilled_lora, strength=self.distilled_lora_strength)
                elif lora_modules(model2):
                    set_lora_strength(model2, 0.0)  # the IC-LoRA stays out of the refine, as in ic_lora.py
            model2 = self._on(model2)
        with self._stage("stage 2"):
            cfg2 = SamplingConfig(width=width, height=height, sigmas=tuple(self.stage2_sigmas), seed=seed, **common)
            video2, audio2 = sample_latents(
                model2, v_ctx, a_ctx, context_mask=mask, initial_video_latent=upscaled,
                initial_audio_latent=audio1, strategy=get_strategy("text_to_video", video_geometry=vgeo, audio_geometry=ageo),
                config=cfg2, generator=generator,
            )
        if fused or (self.stage2_transformer is None and self.offload_device is None and m.can_fuse_loras):
            # the stage-2 model (fused, or the distilled model of both stages) is held by these names only: freed
            # before the decode, as ltx-pipelines free theirs; the next prompt rebuilds the base
            model = model2 = None
            m.release_transformer()
        else:
            self._off(model2)
        stages.append(StageLog("stage2", tuple(video2.shape), None if audio2 is None else tuple(audio2.shape), str(self.device)))

        with self._stage("decode"):
            # decode (tiled when asked)
            codec = self._on(m.video_codec)
            if self.tiling is not None:
                chunks = list(codec.decoder.tiled_decode(video2.to(self.device), self.tiling))
                pixels = to_uint8_frames(torch.cat(chunks, dim=2))
            else:
                pixels = to_uint8_frames(codec.decode(video2.to(self.device)))
            self._off(codec)
            pixels = pixels[:frames]
            wave = None
            if audio2 is not None:
                acodec = self._on(m.audio_codec)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    wave = acodec.decode(audio2.to(self.device))[0].float().cpu()
                self._off(acodec)
                samples = round(frames / fps * acodec.output_sample_rate)
                wave = torch.nn.functional.pad(wave[:, :samples], (0, max(0, samples - wave.shape[-1]))).clamp(-1, 1)
        return TwoStageResult(
            stage1_video_latent=video1.cpu(), upscaled_video_latent=upscaled.cpu(), video_latent=video2.cpu(),
            audio_latent=None if audio2 is None else audio2.cpu(), frames=pixels, waveform=wave,
            sample_rate=m.audio_codec.output_sample_rate, fps=fps, stages=stages, notes=notes,
        )


def generate_two_stage(
    models: Models,
    prompts: str | list[str],
    *,
    lora: PathLike | None = None,
    reference_image: PathLike | None = None,
    reference_audio: PathLike | None = None,
    consent: ConsentRecord | dict[str, Any] | None = None,
    dataset: Any = None,
    identity: str | None = None,
    config: Any = None,
    out_dir: PathLike | None = None,
    progress: bool = True,  # noqa: ARG001 (the stages report instead)
) -> list[Any]:
    """:func:`ltxic.generate` through the two-stage pipeline: one clip per prompt (seed ``config.seed + i``) as
    :class:`ltxic.sampling.generate.Generation`, written as ``NNN_<prompt>.mp4`` with audio into ``out_dir``, with the time
    and peak GPU memory of every stage in ``out_dir/stages.json``.

    ``config`` (:class:`ltxic.sampling.generate.GenerateConfig`) gives the full size; stage 1 runs ``config.steps`` steps at
    half of it. The upsampler and the distilled LoRA are the kit's (``Models.ltx23(spatial_upsampler=...,
    distilled_lora=...)``).
    """
    from ltxic.sampling.generate import GenerateConfig, Generation, resolve_consent, slug
    from ltxic.io.files import write_json_atomic
    from ltxic.io.media import read_image

    config = (config or GenerateConfig()).for_kit(models.name)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    record = resolve_consent(consent, dataset, identity)
    clock = StageClock()
    pipe = TwoStagePipeline(models, ic_lora=lora, ic_lora_strength=config.strength, device=models.device,
                            offload_device=None, clock=clock)
    out = Path(out_dir) if out_dir is not None else None
    gens = []
    for i, prompt in enumerate(prompts):
        seed = config.seed + i
        r = pipe(prompt, reference_image=reference_image, reference_audio=reference_audio, consent=record,
                 identity=identity, width=config.width, height=config.height, frames=config.frames, fps=config.fps,
                 seed=seed, stage1_steps=config.steps, stage1_distilled=config.distilled, guidance=config.guidance,
                 negative_prompt=config.negative_prompt, schedule_tokens=config.schedule_tokens,
                 batch_guidance=config.batch_guidance)
        gen = Generation(prompt=prompt, seed=seed, video_latent=r.video_latent, audio_latent=r.audio_latent,
                         frames=r.frames, waveform=r.waveform, sample_rate=r.sample_rate, fps=r.fps,
                         reference_image=read_image(reference_image) if reference_image is not None else None,
                         notes=list(r.notes))
        if out is not None:
            with clock("write mp4"):
                gen.path = r.write(out / f"{i:03d}_{slug(prompt)}.mp4")
        gens.append(gen)
    if out is not None:
        write_json_atomic(out / "stages.json", {"stages": clock.as_dict()})  # the layout ltxic train writes
    log.info("two-stage sampling:\n%s", clock.table())
    return gens


__all__ = ["STAGE_2_SIGMAS", "TwoStagePipeline", "TwoStageResult", "build_upsampler", "generate_two_stage",
           "tiny_upsampler_config"]
