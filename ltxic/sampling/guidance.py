"""Guidance settings for sampling: LTX-2.3's multi-modal guidance per stream, plus ltxic's identity-reference guidance.

One dataclass, :class:`Guidance`, is read by the sampler, ``ltxic sample``'s flags, the training config's
``validation`` section, lesson 06 and the ComfyUI exporter.

Facts followed, with sources:

* Per stream (video, audio), ltx-core's ``MultiModalGuider`` (``components/guiders.py``) combines four predictions
  of the denoised latent: ``cond + (cfg - 1)(cond - uncond_text) + stg (cond - perturbed) + (modality - 1)
  (cond - isolated)``, then rescales toward ``cond``'s standard deviation: ``pred *= rescale * std(cond) / std(pred)
  + (1 - rescale)``. ``perturbed`` skips the stream's self-attention in the ``stg_blocks``; ``isolated`` skips both
  audio-video cross-attentions (``ltx_pipelines.utils.helpers.multi_modal_guider_denoising_func``).
  ``skip_step = n`` reuses the last guided prediction on all steps but every (n+1)-th.
* LTX-2.3's values are ltx-pipelines' ``LTX_2_3_PARAMS`` (``utils/constants.py``): 30 steps; video CFG 3, audio
  CFG 7; STG 1 on block 28; modality 3; rescale 0.7. :meth:`Guidance.ltx23` writes them down and
  ``tests/test_guidance_parity.py`` reads ``LTX_2_3_PARAMS``, so a change there fails a test.
* Identity references (ltxic's addition): ID-LoRA's inference adds ``scale * (pred_with_ref - pred_without_ref)``
  on the audio stream after the text guidance, default 3; ComfyUI's ``LTXVReferenceAudio`` does the same, one
  scale for both streams. ``reference_video`` / ``reference_audio`` are those scales (0 = off, no extra pass).
* The tiny kit's values were measured on the toy world (``benchmarks/README.md``): on the shipped 8x kit, face
  guidance 1 scored best on the held-out identity with the prompt's room kept (face 0.71 at lesson 04's step 300,
  against 0.60 at 3 and 0.61 with none: ``results/tiny_kit_8x/probe_kitI.json``); on the audio stream 1 beat 3 for the voice
  (dex / ava: 0.557 / 0.455 against 0.511 / 0.203). LTX-2.3's other terms stay off there: on the held-out identity
  with the earlier 16x kit (``benchmarks/guidance_tiny.py``, ``results/guidance_tiny.json``) the defaults scored face / voice 0.672 / 0.670;
  adding text CFG 3 / 7 gave 0.580 / 0.470, STG 1 0.371 / 0.549, modality 3 0.688 / 0.611 (the voice lost more
  than the face gained), all of LTX-2.3's terms 0.434 / 0.479; each term is one more forward pass per step.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ltx_core.components.guiders import MultiModalGuiderParams

# ltx-pipelines' LTX_2_3_PARAMS.num_inference_steps: the real kit's default step count
LTX23_STEPS = 30
TINY_STEPS = 20


@dataclass(frozen=True)
class StreamGuidance:
    """One stream's multi-modal guidance (ltx-core ``MultiModalGuiderParams``).

    Attributes:
        cfg: text guidance: ``(cfg - 1) * (cond - negative prompt)``; 1 = off.
        stg: spatio-temporal guidance: ``stg * (cond - prediction with self-attention skipped in stg_blocks)``; 0 = off.
        stg_blocks: the transformer blocks whose self-attention STG skips.
        modality: ``(modality - 1) * (cond - prediction with the other stream isolated)``; 1 = off.
        rescale: pull the guided prediction's spread back toward the conditional one's (0 = off, 1 = fully).
        skip_step: guide only every ``skip_step + 1``-th step and reuse the last prediction between (0 = every step).
    """

    cfg: float = 1.0
    stg: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    modality: float = 1.0
    rescale: float = 0.0
    skip_step: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stg_blocks", tuple(int(b) for b in self.stg_blocks))
        if self.skip_step < 0:
            raise ValueError(f"skip_step must be >= 0 (0 = guide every step), got {self.skip_step}")
        if self.stg != 0 and not self.stg_blocks:
            raise ValueError(f"stg={self.stg} needs stg_blocks (LTX-2.3: (28,)); set stg=0 to turn STG off")

    def params(self) -> MultiModalGuiderParams:
        """The same settings as ltx-core's ``MultiModalGuiderParams``."""
        return MultiModalGuiderParams(cfg_scale=self.cfg, stg_scale=self.stg, stg_blocks=list(self.stg_blocks),
                                      rescale_scale=self.rescale, modality_scale=self.modality, skip_step=self.skip_step)

    @classmethod
    def from_params(cls, params: MultiModalGuiderParams) -> StreamGuidance:
        return cls(cfg=params.cfg_scale, stg=params.stg_scale, stg_blocks=tuple(params.stg_blocks or ()),
                   modality=params.modality_scale, rescale=params.rescale_scale, skip_step=params.skip_step)

    @property
    def uses_text(self) -> bool:
        return self.cfg != 1.0


@dataclass(frozen=True)
class Guidance:
    """All guidance of one sampling run: per-stream multi-modal guidance and identity-reference guidance.

    Attributes:
        video, audio: :class:`StreamGuidance` of each stream.
        reference_video: ``scale * (cond - without references)`` on the video stream (the face); 0 = off.
        reference_audio: the same on the audio stream (the voice; ID-LoRA's default 3); 0 = off.
    """

    video: StreamGuidance = field(default_factory=StreamGuidance)
    audio: StreamGuidance = field(default_factory=StreamGuidance)
    reference_video: float = 0.0
    reference_audio: float = 0.0

    @classmethod
    def off(cls) -> Guidance:
        """No guidance: one forward pass per step."""
        return cls()

    @classmethod
    def ltx23(cls) -> Guidance:
        """LTX-2.3's official guidance (ltx-pipelines ``LTX_2_3_PARAMS``) and ID-LoRA's voice guidance (3)."""
        stream = dict(stg=1.0, stg_blocks=(28,), modality=3.0, rescale=0.7, skip_step=0)
        return cls(video=StreamGuidance(cfg=3.0, **stream), audio=StreamGuidance(cfg=7.0, **stream),
                   reference_video=0.0, reference_audio=3.0)

    @classmethod
    def tiny(cls) -> Guidance:
        """The tiny kit's measured defaults: reference guidance 1 on the face and 1 on the voice, nothing else."""
        return cls(reference_video=1.0, reference_audio=1.0)

    @classmethod
    def for_kit(cls, name: str) -> Guidance:
        """The defaults for a kit (:attr:`ltxic.models.kit.Models.name`): LTX-2.3's for ``ltx-2.3-22b``, else the tiny kit's."""
        return cls.ltx23() if name.startswith("ltx-2.3") else cls.tiny()

    @property
    def uses_text(self) -> bool:
        """Whether a negative prompt is encoded (text CFG on either stream)."""
        return self.video.uses_text or self.audio.uses_text

    def with_overrides(self, **overrides: Any) -> Guidance:
        """A copy with flat overrides: ``video_cfg``, ``audio_stg_blocks``, ``reference_audio``, ... (``None`` keeps)."""
        video, audio, top = {}, {}, {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key.startswith("video_"):
                video[key[6:]] = value
            elif key.startswith("audio_"):
                audio[key[6:]] = value
            elif key in ("reference_video", "reference_audio"):
                top[key] = value
            else:
                raise TypeError(f"Guidance.with_overrides: unknown setting {key!r}")
        return replace(self, video=replace(self.video, **video), audio=replace(self.audio, **audio), **top)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON, YAML): ``{"video": {...}, "audio": {...}, "reference_video": ..., "reference_audio": ...}``."""
        def stream(s: StreamGuidance) -> dict[str, Any]:
            return {"cfg": s.cfg, "stg": s.stg, "stg_blocks": list(s.stg_blocks), "modality": s.modality,
                    "rescale": s.rescale, "skip_step": s.skip_step}

        return {"video": stream(self.video), "audio": stream(self.audio), "reference_video": self.reference_video,
                "reference_audio": self.reference_audio}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Guidance | None = None) -> Guidance:
        """The inverse of :meth:`as_dict`; keys left out keep ``base``'s values (default: off)."""
        base = base or cls()
        unknown = set(data) - {"video", "audio", "reference_video", "reference_audio"}
        if unknown:
            raise ValueError(f"guidance: unknown keys {sorted(unknown)}; use video, audio, reference_video, reference_audio")
        return replace(base, video=replace(base.video, **(data.get("video") or {})),
                       audio=replace(base.audio, **(data.get("audio") or {})),
                       **{k: float(data[k]) for k in ("reference_video", "reference_audio") if data.get(k) is not None})


@functools.cache
def pipelines_constants() -> ModuleType:
    """ltx-pipelines' ``utils/constants.py`` (LTX-2.3's defaults: the negative prompt, the distilled sigmas), loaded by
    itself. Importing it the usual way first runs ``ltx_pipelines/__init__``, which imports every pipeline and
    transformers' image stack: seconds of every ``ltxic sample`` spent on one string."""
    spec = importlib.util.find_spec("ltx_pipelines")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        raise ImportError("ltx-pipelines is not installed; install ltxic's dependencies (pip install -e .)")
    name = "ltxic._ltx_pipelines_constants"
    module_spec = importlib.util.spec_from_file_location(name, Path(spec.origin).parent / "utils" / "constants.py")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # its dataclasses look their module up
    module_spec.loader.exec_module(module)
    return module


def kit_negative_prompt(name: str) -> str:
    """The default negative prompt for a kit: ltx-pipelines' ``DEFAULT_NEGATIVE_PROMPT`` (their command line's default)
    for LTX-2.3; empty for the tiny kit, whose text encoder knows only the toy captions' words."""
    if name.startswith("ltx-2.3"):
        return pipelines_constants().DEFAULT_NEGATIVE_PROMPT
    return ""


def kit_steps(name: str) -> int:
    """The default step count for a kit: LTX-2.3's 30 (``LTX_2_3_PARAMS``), the tiny kit's 20."""
    return LTX23_STEPS if name.startswith("ltx-2.3") else TINY_STEPS


SETTINGS_HELP: dict[str, str] = {
    "cfg": "text guidance: how strongly the prompt is followed against the negative prompt (1 = off)",
    "stg": "spatio-temporal guidance: away from a prediction with self-attention skipped in stg_blocks (0 = off)",
    "stg_blocks": "the transformer blocks STG perturbs (LTX-2.3: 28)",
    "modality": "audio-video sync: away from a prediction with the other stream cut off (1 = off)",
    "rescale": "pulls the guided prediction's spread back toward the unguided one, against over-saturation (0 = off)",
    "skip_step": "guide every (n+1)-th step only, reusing the last prediction between (0 = every step)",
    "reference_video": "identity guidance on the video stream: toward the prediction with the face reference (0 = off)",
    "reference_audio": "identity guidance on the audio stream: toward the prediction with the voice reference (0 = off)",
}

__all__ = ["LTX23_STEPS", "SETTINGS_HELP", "TINY_STEPS", "Guidance", "StreamGuidance", "kit_negative_prompt", "kit_steps", "pipelines_constants"]
