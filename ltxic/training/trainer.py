"""``train(config)``: an IC-LoRA training run from a :class:`ltxic.training.config.TrainingConfig`.

Builds the pieces the loop (:func:`ltxic.training.loop.run_training`) needs: the model kit from the ``model``
section, the cache of latents and text features (encoders freed before training), the LoRA, the strategy, the
validation sampler with its identity scores; then runs the loop, on one process or under a launcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ltxic.io.files import atomic_path, write_json_atomic
from ltxic.io.profiling import StageClock
from ltxic.training.loop import (
    METRICS_FILE,
    TrainOptions,
    TrainResult,
    TrainingOOMError,
    ValidateFn,
    read_metrics,
    run_training,
)


def options_from_config(cfg: Any) -> TrainOptions:
    """:class:`TrainOptions` from a :class:`ltxic.training.config.TrainingConfig`."""
    opt, out = cfg.optimization, cfg.output
    return TrainOptions(
        output_dir=Path(out.dir),
        steps=opt.steps,
        learning_rate=opt.learning_rate,
        weight_decay=opt.weight_decay,
        warmup_steps=opt.warmup_steps,
        scheduler=opt.scheduler,
        max_grad_norm=opt.max_grad_norm or 0.0,
        grad_accumulation=opt.gradient_accumulation_steps,
        batch_size=opt.batch_size,
        seed=opt.seed,
        checkpoint_interval=out.checkpoint_interval or opt.steps,  # 0: only the final checkpoint
        keep_last_n=out.keep_last_n or 0,
        validation_interval=cfg.validation.interval,
        mixed_precision=opt.mixed_precision,
        gradient_checkpointing=opt.gradient_checkpointing,
        compile=opt.compile,
        activation_memory_budget=opt.activation_memory_budget,
        fp8_base=cfg.model.fp8,
        block_offload=cfg.model.block_offload,
        distributed=opt.distributed,
        lora_metadata={  # the keys ltxic.models.lora.save_lora and ComfyUI / ltx-pipelines read
            "reference_downscale_factor": str(cfg.training_strategy.reference_downscale_factor),
            "training_strategy": cfg.training_strategy.name,
            "base_model": str(cfg.model.checkpoint.name if cfg.model.checkpoint else cfg.model.preset),
        },
    )


def sample_from_cache(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Any:
    """A cached entry (tensors with a leading batch dim of 1) as the strategies' ``EncodedSample``."""
    from ltxic.models.strategies import EncodedSample

    def get(name: str) -> torch.Tensor | None:
        return tensors[name][0] if name in tensors else None

    return EncodedSample(
        video_latent=get("video_latent"), video_context=get("video_context"), audio_context=get("audio_context"),
        context_mask=get("context_mask"), audio_latent=get("audio_latent"), ref_video_latent=get("reference_image_latent"),
        ref_audio_latent=get("reference_audio_latent"), fps=float(meta["fps"]),
    )


def _validator(cfg: Any, strategy: Any, models: Any, device: torch.device) -> ValidateFn | None:
    """Every ``validation.interval`` steps: sample each prompt with the validation references and save it.

    Writes ``NN.safetensors`` (video and audio latents) and, decoded by the codecs, ``NN.mp4`` with its audio, and
    ``scores.json``: each clip's face and voice similarity to the validation references and its lip sync, with the
    embedders that measured them (``validation.embedders``; auto: by the dataset's synthetic marker).
    Prompts and references are encoded here, before training, so the encoders are not needed later.
    """
    video_codec, audio_codec, text_encoder = models.video_codec, models.audio_codec, models.text_encoder
    val = cfg.validation
    if not val.interval or not val.prompts:
        return None
    from safetensors.torch import save_file

    from ltxic.io import media
    from ltxic.training.cache import mono_waveform, video_pixels
    from ltxic.identity.metrics import validation_scorer
    from ltxic.sampling.guidance import Guidance, kit_negative_prompt
    from ltxic.sampling.sampler import SamplingConfig, sample_latents

    scorer = validation_scorer(cfg)
    bucket = cfg.validation_resolution
    factor = cfg.training_strategy.reference_downscale_factor
    fps = 24.0
    with torch.no_grad():
        ref_image = ref_audio = None
        if val.reference_image is not None and strategy.uses_video_reference:
            img = media.read_image(val.reference_image)[None]
            ref_image = video_codec.encode(video_pixels(img, bucket.width // factor, bucket.height // factor).to(device))
        if val.reference_audio is not None and strategy.uses_audio_reference:
            wave, _ = media.read_audio(val.reference_audio, audio_codec.geometry.sample_rate)
            ref_audio = audio_codec.encode(mono_waveform(wave).to(device))
        contexts = [text_encoder.encode([p]) for p in val.prompts]
        kit = getattr(models, "name", "tiny")
        guidance = Guidance.from_dict(val.guidance or {}, base=Guidance.for_kit(kit))
        negative = text_encoder.encode([kit_negative_prompt(kit)]) if guidance.uses_text else (None, None, None)

    def validate(model: torch.nn.Module, step: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        scores: list[dict[str, Any]] = []
        for i, (prompt, (v_ctx, a_ctx, mask)) in enumerate(zip(val.prompts, contexts)):
            config = SamplingConfig(
                width=bucket.width, height=bucket.height, frames=bucket.frames, fps=fps, steps=val.num_inference_steps,
                guidance=guidance, seed=val.seed + i,
                audio_mel_bins=getattr(audio_codec, "latent_mel_bins", None),
                video_geometry=video_codec.geometry, audio_geometry=audio_codec.geometry,
            )
            video, audio = sample_latents(
                model, v_ctx, a_ctx, context_mask=mask, negative_video_context=negative[0], negative_audio_context=negative[1],
                negative_context_mask=negative[2], ref_video_latent=ref_image, ref_audio_latent=ref_audio,
                strategy=strategy, config=config,
            )
            tensors = {"video_latent": video.float().cpu().contiguous()}
            if audio is not None:
                tensors["audio_latent"] = audio.float().cpu().contiguous()
            with atomic_path(folder / f"{i:02d}.safetensors") as tmp:
                save_file(tensors, str(tmp), metadata={"prompt": prompt, "step": str(step)})
            frames = video_codec.decode(video.float())[0].permute(1, 2, 3, 0)
            frames = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
            wave = audio_codec.decode(audio.float())[0].cpu() if audio is not None else None
            media.write_video(folder / f"{i:02d}.mp4", frames, fps, wave, audio_codec.output_sample_rate)
            scores.append(scorer.score(f"{i:02d}.mp4", prompt, frames, wave, audio_codec.output_sample_rate, fps))
        models.release_decoders()  # the card's memory goes back to training
        write_json_atomic(folder / "scores.json", scorer.report(step, scores))

    return validate


def train(config: Any, *, resume: bool = False, progress: bool = True, allow_invalid_dataset: bool = False) -> TrainResult:
    """Train an IC-LoRA as a config describes (a :class:`ltxic.training.config.TrainingConfig` or a YAML path).

    Builds the model kit from the ``model`` section (:meth:`ltxic.models.kit.Models.from_config`: the tiny kit, or
    LTX-2.3 from its official files), caches the dataset's latents and text features (under ``dataset.cache_dir`` or
    ``output.dir/cache``) and the validation prompts, frees the encoders, then builds the base transformer, injects
    the LoRA and runs :func:`run_training`. ``resume=True`` continues the newest complete checkpoint in ``output.dir``.

    Before caching, the dataset is validated (:func:`ltxic.training.dataset_gate.check_dataset_for_training`): a dataset
    with errors (a clip of another person, a missing file, ...) is refused with each error and its fix
    (:class:`~ltxic.training.dataset_gate.DatasetValidationError`) unless ``allow_invalid_dataset`` or
    ``dataset.allow_validation_errors`` allows it; ``output.dir/dataset_check.json`` records the check and any override.

    Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) every rank runs this: each encodes its share of
    the cache, then trains on its share of each global batch (``optimization.distributed``: see
    :mod:`ltxic.training.distributed`); rank 0 alone writes checkpoints, validation clips, metrics and ``stages.json``.
    """
    from ltxic.training.config import TrainingConfig, load_config
    from ltxic.models.devices import device_for
    from ltxic.training.distributed import setup

    cfg = config if isinstance(config, TrainingConfig) else load_config(config)
    options = options_from_config(cfg)
    device = device_for()
    dist = setup(options.distributed, device)  # torchrun / accelerate launch: join the process group
    try:
        return _train(cfg, options, dist, device, resume=resume, progress=progress, allow_invalid_dataset=allow_invalid_dataset)
    finally:
        dist.close()


def _train(cfg: Any, options: TrainOptions, dist: Any, device: torch.device, *, resume: bool, progress: bool,
           allow_invalid_dataset: bool = False) -> TrainResult:
    from ltxic.training.cache import build_cache, load_cached
    from ltxic.training.dataset_gate import check_dataset_for_training
    from ltxic.models.kit import Models
    from ltxic.models.lora import save_lora
    from ltxic.models.strategies import collate, get_strategy

    main = dist.is_main()
    progress = progress and main
    options.progress = progress
    clock = StageClock()
    models = Models.from_config(cfg.model, device=device, seed=cfg.optimization.seed)  # finds the files, loads little
    with clock("dataset check"):  # before anything is cached or trained; every rank decides alike
        checked = check_dataset_for_training(cfg, options.output_dir, allow=allow_invalid_dataset, write=main)
    video_codec, audio_codec = models.video_codec, models.audio_codec
    # token positions follow the codecs' compression (the tiny video codec is 16x in space, LTX-2's VAE 32x)
    strategy = get_strategy(cfg.training_strategy.name, cfg.training_strategy.reference_downscale_factor,
                            first_frame_conditioning_p=cfg.training_strategy.first_frame_conditioning_p,
                            video_geometry=video_codec.geometry, audio_geometry=audio_codec.geometry)
    options.lora_metadata.update(strategy.checkpoint_metadata())
    options.lora_metadata["base_model"] = models.name
    def cache(share: tuple[int, int] | None) -> Any:
        return build_cache(
            cfg.dataset.dataset_file, cfg.dataset.cache_dir or options.output_dir / "cache",
            video_codec=video_codec, audio_codec=audio_codec, text_encoder=models.text_encoder,
            buckets=cfg.dataset.resolution_buckets, reference_downscale_factor=cfg.training_strategy.reference_downscale_factor,
            device=device, progress=progress, clock=clock, share=share,
        )

    try:
        if dist.enabled:  # each rank encodes its share; then every rank lists the whole (now complete) cache
            cache((dist.rank, dist.world_size))
            dist.barrier()
        report = cache(None)
    except torch.OutOfMemoryError as err:
        raise TrainingOOMError(
            "out of memory while caching (the VAE encoders and the text encoder run before training). Lower "
            "dataset.resolution_buckets, set model.text_encoder_offload: true (Gemma streamed from host memory), "
            "or cache on a larger card: the cache (dataset.cache_dir) is reused by later runs."
        ) from err
    samples = [sample_from_cache(*load_cached(e)) for e in report.entries]
    with clock("validation prompts"):
        validate = _validator(cfg, strategy, models, device)
    # caching is done: Gemma and the VAE encoders leave the card before the transformer arrives
    models.release_encoders()

    with clock("transformer load"):
        model = models.transformer
    lora_cfg = prepare_lora(model, cfg, device)
    # float32 master adapters; the file holds them in the base's dtype, as ComfyUI and ltx-core fuse them
    file_dtype = torch.bfloat16 if cfg.model.dtype == "bfloat16" else None

    def save(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
        save_lora(model, path, config=lora_cfg, metadata=metadata, dtype=file_dtype)

    def timed_validate(model: torch.nn.Module, step: int, folder: Path) -> None:
        try:
            with clock("validation"):
                validate(model, step, folder)  # type: ignore[misc]
        except torch.OutOfMemoryError as err:
            raise TrainingOOMError(
                f"out of memory while validating at step {step} ({cfg.validation_resolution}). Lower "
                "validation.resolution or validation.num_inference_steps, or set validation.interval: 0 and compare "
                "checkpoints afterwards with ltxic sample. The last checkpoint is saved: --resume continues."
            ) from err

    failed = True
    try:
        result = run_training(
            model, samples, strategy, options, save_lora=save, groups=[e.bucket for e in report.entries], collate=collate,
            validate=timed_validate if validate is not None else None, resume=resume, device=device, distributed=dist,
        )
        failed = False
        return result
    finally:  # also after a failure: what ran, how long, how much memory
        if main:
            summary = _step_summary(options.output_dir / METRICS_FILE) if (options.output_dir / METRICS_FILE).exists() else {}
            summary.update(recompute_blocks=getattr(model, "ltxic_recompute_blocks", None), compiled=getattr(model, "ltxic_compiled", False),
                           activation_memory_budget=options.activation_memory_budget,
                           dataset_check={"ok": checked.ok, "errors": len(checked.errors), "overridden": checked.overridden,
                                          "override": checked.override})
            try:
                write_json_atomic(options.output_dir / "stages.json", {"stages": clock.as_dict(), **summary})
            except Exception:
                if not failed:  # after a failure (a full disk, say) its error is the one to report, not this one's
                    raise


def prepare_lora(model: torch.nn.Module, cfg: Any, device: torch.device) -> Any:
    """Inject the config's LoRA into ``model`` and move it to ``device``; returns the ``LoRAConfig``.

    The adapters are float32 master weights whatever the base's dtype: on a GPU the matmuls run in bf16 under
    autocast, and the optimizer's small updates are not lost to bf16 rounding.
    """
    from ltxic.models.lora import LoRAConfig, inject_lora, lora_parameters

    lora_cfg = LoRAConfig(rank=cfg.lora.rank, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout,
                          target_modules=tuple(cfg.lora.target_modules), seed=cfg.optimization.seed)
    inject_lora(model, lora_cfg)
    for param in lora_parameters(model):
        param.data = param.data.float()
    model.to(device)
    return lora_cfg


def _step_summary(metrics_path: Path) -> dict[str, Any]:
    """Median and spread of the step times after the first two (warm-up), and the largest peak memory."""
    rows = read_metrics(metrics_path)
    times = sorted(r["seconds"] for r in rows[2:]) or sorted(r["seconds"] for r in rows)
    if not times:
        return {}
    peaks = [r["peak_gib"] for r in rows if "peak_gib" in r]
    return {"steps": len(rows), "step_seconds_median": times[len(times) // 2], "step_seconds_min": times[0],
            "step_seconds_max": times[-1], "step_peak_gib": max(peaks) if peaks else None}
