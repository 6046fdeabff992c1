"""Generate talking clips with an identity IC-LoRA: the Python API behind ``ltxic sample``.

``generate(models, prompts, lora=..., reference_image=..., reference_audio=..., consent=...)`` loads the
LoRA into the base transformer (strength, reference downscale factor and training strategy read from the
LoRA file's metadata), prepares and encodes the references (:mod:`ltxic.sampling.references`), encodes the prompts,
samples video and audio latents together (:func:`ltxic.sampling.sampler.sample_latents`), decodes both with the
codecs and writes one mp4 with its audio track per prompt (:func:`ltxic.io.media.write_video`).

:func:`preview_figure` and :func:`write_side_by_side` show the reference next to the result in notebooks.
The real-model two-stage path (half resolution, spatial upscaler, refine) is :mod:`ltxic.sampling.pipeline`.

Facts followed:

* Reference resolution = target / ``reference_downscale_factor`` (ltx-pipelines ``ic_lora.py``
  ``_create_conditionings``: ``ref_height = height // scale``; it refuses sizes not divisible by the factor).
  The factor is read from the LoRA's safetensors metadata as ltx-pipelines does
  (``int(metadata["reference_downscale_factor"])``, default 1) -- ltxic's ``save_lora`` writes it.
* The strategy the LoRA was trained with is in its metadata (``training_strategy``, written by the
  trainer; ``ltxic_strategy`` from ``Strategy.checkpoint_metadata``); references are placed by the same
  :class:`ltxic.models.strategies.Strategy` as in training.
* Audio length = ``frames / fps`` (ltx-pipelines generate audio for the video's duration).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ltxic.io.progress import progress as tqdm

from ltxic.data.dataset import ConsentRecord, Dataset
from ltxic.io.errors import InputError
from ltxic.models.kit import Models
from ltxic.models.latents import VideoGeometry
from ltxic.models.lora import LoRAError, load_lora, lora_modules, read_lora_metadata, set_lora_strength
from ltxic.sampling.references import (
    PreparedAudio,
    PreparedImage,
    consent_for,
    prepare_reference_audio,
    prepare_reference_image,
)
from ltxic.sampling.guidance import Guidance, kit_negative_prompt, kit_steps
from ltxic.sampling.sampler import SamplingConfig, sample_latents
from ltxic.sampling.strips import even_picks
from ltxic.models.strategies import STRATEGIES, get_strategy

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


class ResolutionError(InputError, ValueError):
    """The requested size does not fit the model's VAE (and the LoRA's reference scale)."""


@dataclass
class GenerateConfig:
    """What to generate. ``strategy``/``reference_downscale_factor`` default to the LoRA's metadata; ``steps`` and
    ``guidance`` to the kit's (:meth:`for_kit`)."""

    width: int = 128
    height: int = 128
    frames: int = 25
    fps: float = 24.0
    steps: int | None = None  # None: the kit's default (LTX-2.3: 30, as ltx-pipelines; tiny: 20)
    distilled: bool = False
    seed: int = 0
    strength: float = 1.0
    # None: the kit's defaults (Guidance.for_kit: LTX-2.3's official guidance, or the tiny kit's measured one)
    guidance: Guidance | None = None
    # the schedule's token count: None = the target's (as training shifts its sigmas); 4096 = ltx-pipelines'
    schedule_tokens: int | None = None
    negative_prompt: str | None = None  # None: the kit's (LTX-2.3: ltx-pipelines' DEFAULT_NEGATIVE_PROMPT; tiny: "")
    strategy: str | None = None
    reference_downscale_factor: int | None = None
    batch_guidance: bool | None = None  # the guidance passes as one batch (SamplingConfig.batch_guidance); None = off

    def for_kit(self, kit_name: str) -> GenerateConfig:
        """A copy with ``steps``, ``guidance`` and ``negative_prompt`` filled in with the kit's defaults where they are ``None``."""
        from dataclasses import replace

        return replace(self, steps=self.steps if self.steps is not None else kit_steps(kit_name),
                       guidance=self.guidance if self.guidance is not None else Guidance.for_kit(kit_name),
                       negative_prompt=self.negative_prompt if self.negative_prompt is not None else kit_negative_prompt(kit_name))


@dataclass
class Generation:
    """One generated clip: latents, decoded frames and audio, and the mp4 path when written."""

    prompt: str
    seed: int
    video_latent: torch.Tensor
    audio_latent: torch.Tensor | None
    frames: np.ndarray  # uint8 (F, H, W, 3)
    waveform: torch.Tensor | None  # float32 (1, N)
    sample_rate: int
    fps: float
    path: Path | None = None
    reference_image: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- checks


def check_resolution(width: int, height: int, frames: int, geometry: VideoGeometry, reference_downscale_factor: int = 1) -> None:
    """Raise :class:`ResolutionError` with a valid size to use instead when the VAE cannot take this one."""
    from ltxic.data.buckets import nearest_valid_bucket

    multiple = geometry.spatial * reference_downscale_factor
    bad = []
    if width < multiple or width % multiple or height < multiple or height % multiple:
        bad.append(f"width and height must be multiples of {multiple} (the VAE compresses {geometry.spatial}x in space"
                   + (f", and the reference is 1/{reference_downscale_factor} of the target)" if reference_downscale_factor > 1 else ")"))
    if frames < 1 or (frames - 1) % geometry.temporal:
        bad.append(f"frames must be {geometry.temporal}k+1 (1, 9, 17, 25, ..., 49, ..., 121)")
    if not bad:
        return
    b = nearest_valid_bucket(width, height, frames)
    w = max(multiple, round(b.width / multiple) * multiple)
    h = max(multiple, round(b.height / multiple) * multiple)
    f = max(1, round((b.frames - 1) / geometry.temporal) * geometry.temporal + 1)
    raise ResolutionError(
        f"--width {width} --height {height} --frames {frames} does not fit the model: {'; '.join(bad)}. "
        f"Use --width {w} --height {h} --frames {f} (the nearest valid size)."
    )


def lora_settings(path: PathLike) -> dict[str, Any]:
    """``strategy`` (or ``None`` when the file does not say) and ``reference_downscale_factor`` from a LoRA file."""
    meta = read_lora_metadata(path)
    strategy = meta.get("training_strategy") or meta.get("ltxic_strategy")
    if strategy in (None, "", "unspecified"):
        strategy = None
    elif strategy not in STRATEGIES:
        raise LoRAError(
            f"{path}: metadata training_strategy={strategy!r} is not one ltxic can sample with "
            f"({sorted(STRATEGIES)}); this LoRA was trained for another strategy or tool"
        )
    raw = meta.get("reference_downscale_factor", "1")
    try:
        factor = int(float(raw))
        if factor < 1 or float(raw) != factor:
            raise ValueError
    except ValueError as err:
        raise LoRAError(f"{path}: metadata reference_downscale_factor={raw!r} is not a whole number >= 1") from err
    return {"strategy": strategy, "reference_downscale_factor": factor, "metadata": meta}


def resolve_consent(consent: ConsentRecord | dict[str, Any] | None, dataset: Dataset | PathLike | None, identity: str | None) -> ConsentRecord | None:
    """The consent record given, or the identity's record in ``dataset`` (``None`` when neither is given)."""
    if consent is not None:
        return consent if isinstance(consent, ConsentRecord) else ConsentRecord.model_validate(consent)
    if dataset is not None:
        if not identity:
            raise ValueError("dataset= was given without identity=: name the identity whose consent covers the references")
        return consent_for(dataset, identity)
    return None


# ----------------------------------------------------------------------------------------------- decode


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """Decoded frames ``(1, 3, F, H, W)`` in [-1, 1] -> uint8 ``(F, H, W, 3)``."""
    x = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


@torch.no_grad()
def decode(models: Models, video_latent: torch.Tensor, audio_latent: torch.Tensor | None, *, frames: int, fps: float, seed: int = 0) -> tuple[np.ndarray, torch.Tensor | None]:
    """Frames uint8 ``(F, H, W, 3)`` and audio ``(1, N)`` of exactly ``frames / fps`` seconds.

    Decoding is seeded (the tiny audio codec's Griffin-Lim starts from random phases), so a seed gives
    the same waveform every time.
    """
    video = models.video_codec.decode(video_latent.to(models.device).float())
    pixels = to_uint8_frames(video)[:frames]
    wave = None
    if audio_latent is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            wave = models.audio_codec.decode(audio_latent.to(models.device).float())[0].float().cpu()
        samples = round(frames / fps * models.audio_codec.output_sample_rate)
        wave = wave[:, :samples]
        if wave.shape[-1] < samples:
            wave = torch.nn.functional.pad(wave, (0, samples - wave.shape[-1]))
        wave = wave.clamp(-1, 1)
    return pixels, wave


# ----------------------------------------------------------------------------------------------- generate


def slug(text: str, length: int = 40) -> str:
    """A file-name-safe stem from a prompt (``NNN_<slug>.mp4``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:length] or "clip"


def read_prompts_file(path: PathLike) -> list[str]:
    """One prompt per non-empty line (lines starting with ``#`` are comments)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: prompts file not found (one prompt per line)")
    prompts = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"{path}: holds no prompts; write one prompt per line")
    return prompts


def generate(
    models: Models,
    prompts: str | Sequence[str],
    *,
    lora: PathLike | None = None,
    reference_image: PathLike | None = None,
    reference_audio: PathLike | None = None,
    consent: ConsentRecord | dict[str, Any] | None = None,
    dataset: Dataset | PathLike | None = None,
    identity: str | None = None,
    config: GenerateConfig | None = None,
    out_dir: PathLike | None = None,
    progress: bool = True,
) -> list[Generation]:
    """Sample one clip per prompt (seed ``config.seed + i``); write ``NNN_<prompt>.mp4`` files into ``out_dir``.

    ``consent`` (or ``dataset`` + ``identity``) must cover the references: ``face`` for the image,
    ``voice`` for the audio. A LoRA trained for another base model raises ``LoRAError`` (``load_lora``).
    """
    config = (config or GenerateConfig()).for_kit(models.name)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("generate: no prompts given")
    strategy_name, factor = config.strategy, config.reference_downscale_factor
    if lora is not None:
        settings = lora_settings(lora)
        if strategy_name is not None and settings["strategy"] is not None and strategy_name != settings["strategy"]:
            raise LoRAError(
                f"{lora}: this LoRA was trained with strategy {settings['strategy']!r}, but strategy "
                f"{strategy_name!r} was asked for; leave the strategy unset to use the LoRA's"
            )
        strategy_name = strategy_name or settings["strategy"]
        if factor is not None and factor != settings["reference_downscale_factor"]:
            raise LoRAError(
                f"{lora}: the LoRA was trained with reference_downscale_factor={settings['reference_downscale_factor']}, "
                f"not {factor}; leave it unset to use the LoRA's"
            )
        factor = settings["reference_downscale_factor"]
    factor = factor or 1
    if strategy_name is None:
        strategy_name = ("audio_ref_only_ic" if reference_audio is not None else "ic") if reference_image is not None else "text_to_video"

    video_geometry, audio_geometry = models.video_codec.geometry, models.audio_codec.geometry
    strategy = get_strategy(strategy_name, factor, video_geometry=video_geometry, audio_geometry=audio_geometry)
    if strategy.uses_video_reference and reference_image is None:
        raise ValueError(f"the LoRA's strategy {strategy_name!r} needs a reference image (--reference-image)")
    if strategy.uses_audio_reference and reference_audio is None:
        raise ValueError(f"the LoRA's strategy {strategy_name!r} needs a reference voice clip (--reference-audio)")
    if reference_audio is not None and not strategy.uses_audio_reference:
        raise ValueError(
            f"a reference voice clip was given but strategy {strategy_name!r} does not use one; drop it, or use a "
            "LoRA trained with 'audio_ref_only_ic'"
        )
    if reference_image is not None and not strategy.uses_video_reference:
        raise ValueError(f"a reference image was given but strategy {strategy_name!r} does not use one; drop it")
    check_resolution(config.width, config.height, config.frames, video_geometry, factor if strategy.uses_video_reference else 1)

    record = resolve_consent(consent, dataset, identity)
    notes: list[str] = []
    ref_image: PreparedImage | None = None
    ref_audio: PreparedAudio | None = None
    ref_v = ref_a = None
    device = models.device
    with torch.no_grad():
        if reference_image is not None:
            ref_image = prepare_reference_image(reference_image, config.width // factor, config.height // factor,
                                                consent=record, identity=identity)
            notes += ref_image.notes
            ref_v = models.video_codec.encode(ref_image.pixels.to(device))
        if reference_audio is not None:
            ref_audio = prepare_reference_audio(reference_audio, audio_geometry.sample_rate, consent=record, identity=identity)
            notes += ref_audio.notes
            ref_a = models.audio_codec.encode(ref_audio.waveform.to(device))
        negative = models.text_encoder.encode([config.negative_prompt]) if config.guidance.uses_text else (None, None, None)
        contexts = [models.text_encoder.encode([p]) for p in prompts]
    # the encoders are done: on a real kit their memory goes back before the transformer is built
    models.release_encoders()
    model = models.transformer
    if lora is not None:
        load_lora(model, lora, strength=config.strength)
    elif lora_modules(model):
        set_lora_strength(model, config.strength)

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    results: list[Generation] = []
    for i, prompt in enumerate(tqdm(prompts, desc="generating", disable=not progress or len(prompts) < 2)):
        seed = config.seed + i
        v_ctx, a_ctx, mask = contexts[i]
        sampling = SamplingConfig(
            width=config.width, height=config.height, frames=config.frames, fps=config.fps, steps=config.steps,
            distilled=config.distilled, seed=seed, guidance=config.guidance, schedule_tokens=config.schedule_tokens,
            audio_mel_bins=getattr(models.audio_codec, "latent_mel_bins", None),
            video_geometry=video_geometry, audio_geometry=audio_geometry, batch_guidance=config.batch_guidance,
        )
        video, audio = sample_latents(
            model, v_ctx, a_ctx, context_mask=mask,
            negative_video_context=negative[0], negative_audio_context=negative[1], negative_context_mask=negative[2],
            ref_video_latent=ref_v, ref_audio_latent=ref_a, strategy=strategy, config=sampling,
            progress=progress and len(prompts) == 1,
        )
        pixels, wave = decode(models, video, audio, frames=config.frames, fps=config.fps, seed=seed)
        gen = Generation(
            prompt=prompt, seed=seed, video_latent=video.cpu(), audio_latent=None if audio is None else audio.cpu(),
            frames=pixels, waveform=wave, sample_rate=models.audio_codec.output_sample_rate, fps=config.fps,
            reference_image=ref_image.as_uint8() if ref_image is not None else None, notes=list(notes),
        )
        if out is not None:
            from ltxic.io.media import write_video

            gen.path = write_video(out / f"{i:03d}_{slug(prompt)}.mp4", pixels, config.fps, wave, gen.sample_rate)
        results.append(gen)
    if out is not None:
        from ltxic.io.files import write_json_atomic

        write_json_atomic(out / "generations.json", {
            "lora": str(lora) if lora is not None else None, "strategy": strategy_name, "reference_downscale_factor": factor,
            "reference_image": str(reference_image) if reference_image else None,
            "reference_audio": str(reference_audio) if reference_audio else None,
            "config": {k: (v.as_dict() if isinstance(v, Guidance) else v)
                       for k, v in ((k, getattr(config, k)) for k in config.__dataclass_fields__)}, "notes": notes,
            "clips": [{"prompt": g.prompt, "seed": g.seed, "file": g.path.name if g.path else None} for g in results],
        })
    return results


# ----------------------------------------------------------------------------------------------- previews


def _fit_height(img: np.ndarray, height: int) -> np.ndarray:
    """Resize uint8 ``(h, w, 3)`` to ``height`` rows (even width, aspect kept)."""
    h, w = img.shape[:2]
    width = max(2, int(round(w * height / h / 2)) * 2)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def side_by_side_frames(reference: np.ndarray, frames: np.ndarray, gap: int = 4) -> np.ndarray:
    """Every frame with the reference image to its left (uint8 ``(F, H, W_ref + gap + W, 3)``)."""
    n, h, w, _ = frames.shape
    ref = _fit_height(reference, h)
    sep = np.full((h, gap, 3), 255, np.uint8)
    left = np.concatenate([ref, sep], axis=1)
    return np.ascontiguousarray(np.concatenate([np.broadcast_to(left, (n, *left.shape)), frames], axis=2))


def write_side_by_side(path: PathLike, generation: Generation, reference: np.ndarray | None = None) -> Path:
    """An mp4 with the reference image left of the generated video, with the generated audio."""
    from ltxic.io.media import write_video

    reference = reference if reference is not None else generation.reference_image
    if reference is None:
        raise ValueError("write_side_by_side: the generation has no reference image; pass reference=")
    frames = side_by_side_frames(reference, generation.frames)
    return write_video(path, frames, generation.fps, generation.waveform, generation.sample_rate)


def frames_figure(frames: np.ndarray, fps: float, n_frames: int = 6, reference: np.ndarray | None = None, title: str = ""):
    """A matplotlib figure: the reference (when given), then ``n_frames`` evenly spaced frames of uint8
    ``(F, H, W, 3)`` with their times; for a generated clip, a validation mp4 (``media.read_video``) or a drift check."""
    import matplotlib.pyplot as plt

    count = len(frames)
    if count == 0:
        raise ValueError("frames_figure: no frames to show")
    picks = even_picks(count, n_frames)
    cols = len(picks) + (reference is not None)
    fig, axes = plt.subplots(1, cols, figsize=(2.0 * cols, 2.3), squeeze=False)
    axes = axes[0]
    k = 0
    if reference is not None:
        axes[0].imshow(reference)
        axes[0].set_title("reference", fontsize=9)
        k = 1
    for ax, idx in zip(axes[k:], picks):
        ax.imshow(frames[idx])
        ax.set_title(f"frame {idx} ({idx / fps:.2f} s)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title[:90], fontsize=9)
    fig.tight_layout()
    return fig


def preview_figure(generation: Generation, reference: np.ndarray | None = None, n_frames: int = 6):
    """A matplotlib figure: the reference, then ``n_frames`` evenly spaced generated frames (for notebooks)."""
    reference = reference if reference is not None else generation.reference_image
    return frames_figure(generation.frames, generation.fps, n_frames, reference, generation.prompt)


__all__ = [
    "GenerateConfig",
    "Generation",
    "Models",
    "ResolutionError",
    "check_resolution",
    "decode",
    "frames_figure",
    "generate",
    "lora_settings",
    "preview_figure",
    "read_prompts_file",
    "resolve_consent",
    "side_by_side_frames",
    "write_side_by_side",
]
