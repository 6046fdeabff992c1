"""The training config: typed pydantic sections loaded from YAML, every problem reported at once.

``load_config("run.yaml")`` returns a :class:`TrainingConfig` or raises one :class:`ConfigError` that lists
every problem in the file, each with its dotted field (``lora.rank``), the bad value and the fix.

Paths
    Relative paths in a YAML file resolve against the YAML file's folder (or ``base_dir`` when given), so a
    config travels with its data. The shipped examples in ``ltxic/configs/`` (see :func:`example_config`) use
    paths relative to that folder that point into the repository root (``../../data_samples/dataset.json``):
    they work from a repository checkout (``pip install -e .``, which is how the course runs). From an
    installed wheel, pass ``base_dir="path/to/your/checkout/ltxic/configs"`` or edit the paths.

Two ways in
    ``load_config(path)`` / ``TrainingConfig.from_dict(data, base_dir=...)`` resolve paths, check that input
    files exist (skip with ``check_files=False``, e.g. for data not made yet) and raise :class:`ConfigError`.
    Plain ``TrainingConfig.model_validate(data)`` checks structure and values only: paths stay as written
    and no file is checked (pass ``context={"base_dir": ..., "check_files": True}`` to get both).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from ltxic.data.buckets import ResolutionBucket
from ltxic.io.errors import InputError
from ltxic.io.files import atomic_path

MODEL_PRESETS = ("tiny", "ltx-2.3-22b")  # kept equal to ltxic.models.transformer.PRESETS (a test checks)
STRATEGIES = ("text_to_video", "ic", "audio_ref_only_ic")

# Attention of every stream (video, audio, both cross-modal directions: the ``to_*`` suffixes match them
# all) plus the feed-forward layers of both streams. A pattern matches a module whose dotted name ends
# with it at a dot boundary, e.g. ``to_q`` matches ``transformer_blocks.3.audio_attn1.to_q``.
DEFAULT_TARGET_MODULES = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "audio_ff.net.0.proj",
    "audio_ff.net.2",
)


# --------------------------------------------------------------------------------------------------------
# Paths: resolved against the YAML's folder, checked for existence when asked


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = path.expanduser()
    if base is not None and not path.is_absolute():
        path = Path(os.path.normpath(Path(base) / path))
    return path


def _missing(path: Path, info: ValidationInfo, what: str) -> PydanticCustomError:
    base = (info.context or {}).get("base_dir")
    where = f"relative paths resolve against {base}" if base is not None else "relative to the current folder"
    return PydanticCustomError(
        "file_missing", "{what} not found: {path} ({where})", {"what": what, "path": str(path), "where": where}
    )


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if (info.context or {}).get("check_files"):
        if not path.exists():
            raise _missing(path, info, "file")
        if path.is_dir():
            raise PydanticCustomError("file_is_dir", "{path} is a folder, expected a file", {"path": str(path)})
    return path


def _existing_path(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if (info.context or {}).get("check_files") and not path.exists():
        raise _missing(path, info, "file or folder")
    return path


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
InputFile = Annotated[Path, AfterValidator(_existing_file)]
InputPath = Annotated[Path, AfterValidator(_existing_path)]


def _fix(text: str) -> dict[str, Any]:
    """Field metadata: the advice appended to any error on that field."""
    return {"fix": text}


# --------------------------------------------------------------------------------------------------------
# Sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """Which base transformer to train on."""

    preset: Literal["tiny", "ltx-2.3-22b"] | None = Field(
        None, json_schema_extra=_fix("'tiny' (CPU course model) or 'ltx-2.3-22b' (the real architecture)")
    )
    checkpoint: InputFile | None = Field(
        None, json_schema_extra=_fix("the base model's .safetensors file (`ltxic download` fetches LTX-2.3)")
    )
    text_encoder: InputPath | None = Field(
        None, json_schema_extra=_fix("the text encoder's file or folder (for LTX-2.3: the Gemma 3 folder)")
    )
    comfyui_root: InputPath | None = Field(
        None, json_schema_extra=_fix("the ComfyUI tree `ltxic download --root DIR` filled (its models/ folder is searched)")
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "bfloat16", json_schema_extra=_fix("'bfloat16' on a GPU, 'float32' on a CPU")
    )
    fp8: bool = Field(False, json_schema_extra=_fix("true stores block weights in fp8 (24 GB cards), else false"))
    text_encoder_offload: bool = Field(
        False, json_schema_extra=_fix("true streams Gemma's layers from host memory while captions are encoded (24 GB cards)")
    )
    block_offload: bool = Field(
        False, json_schema_extra=_fix("true keeps the fp8 block weights in host memory during training, each block's "
                                      "visiting the GPU while it runs (24 GB cards; needs fp8: true and "
                                      "optimization.gradient_checkpointing: true)")
    )

    @model_validator(mode="after")
    def _needs_weights(self) -> ModelConfig:
        if self.preset is None and self.checkpoint is None:
            raise PydanticCustomError(
                "model_missing",
                "neither model.preset nor model.checkpoint is set: set preset: tiny (or ltx-2.3-22b) "
                "or checkpoint: path/to/base.safetensors",
                {"field": "model.preset"},
            )
        if self.checkpoint is not None and self.checkpoint.suffix != ".safetensors":
            raise PydanticCustomError(
                "checkpoint_format",
                "must be a .safetensors file (got {path}): weights load only from safetensors, "
                "never from pickles; convert the file or download the .safetensors release",
                {"path": str(self.checkpoint), "field": "model.checkpoint"},
            )
        return self


class DatasetConfig(_Section):
    """Where the training pairs are and which sizes they are trained at."""

    dataset_file: InputFile = Field(
        json_schema_extra=_fix("the path to a dataset.json (make one with `ltxic pair`)")
    )
    resolution_buckets: list[ResolutionBucket] = Field(
        min_length=1, json_schema_extra=_fix("a list of 'WIDTHxHEIGHTxFRAMES' strings, e.g. ['768x448x49']")
    )
    cache_dir: ConfigPath | None = Field(
        None, json_schema_extra=_fix("a folder for cached latents, or null for the trainer's default")
    )
    identity_checks: bool | None = Field(
        None, json_schema_extra=_fix("null (as `ltxic validate`: on for real footage, off for a synthetic dataset), "
                                     "true (also score a toy dataset's clips against their references) or false")
    )
    allow_validation_errors: bool = Field(
        False, json_schema_extra=_fix("false (refuse a dataset that `ltxic validate` finds errors in, e.g. a clip of "
                                      "another person) or true (train anyway; the run records the errors it overrode)")
    )


class TrainingStrategyConfig(_Section):
    """How inputs are built: plain text-to-video, ``ic`` (reference video/image tokens in context), or
    ``audio_ref_only_ic`` (the portrait as reference tokens in the video stream, the voice clip as reference
    tokens in the audio stream)."""

    name: Literal["text_to_video", "ic", "audio_ref_only_ic"] = Field(
        json_schema_extra=_fix("'audio_ref_only_ic' for identity with voice, 'ic' for image/video references")
    )
    reference_downscale_factor: int = Field(
        1, ge=1, json_schema_extra=_fix("1 (reference at full size) or 2 (half-size reference, cheaper)")
    )
    first_frame_conditioning_p: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        json_schema_extra=_fix("a probability in [0, 1] (defaults: 0 for audio_ref_only_ic, else 0.1)"),
    )

    @model_validator(mode="before")
    @classmethod
    def _strategy_defaults(cls, data: Any) -> Any:
        # Lightricks' trainer uses 0.1 (the LoRA keeps image-to-video). ID-LoRA's audio_ref_only_ic uses 0.9
        # because its face enters as the clean first frame; ltxic's enters as reference tokens, and a clip
        # generated from a portrait has no clean first frame, so 0 (see ltxic/models/strategies.py).
        if isinstance(data, dict) and "first_frame_conditioning_p" not in data:
            data = {**data, "first_frame_conditioning_p": 0.0 if data.get("name") == "audio_ref_only_ic" else 0.1}
        return data


class OptimizationConfig(_Section):
    """The optimizer and its schedule."""

    learning_rate: float = Field(1e-4, gt=0, json_schema_extra=_fix("a positive number; 1e-4 suits LoRAs"))
    batch_size: int = Field(1, ge=1, json_schema_extra=_fix("an integer >= 1; 1 on a single GPU"))
    steps: int = Field(6000, ge=1, json_schema_extra=_fix("an integer >= 1; 6000 for the real model"))
    gradient_accumulation_steps: int = Field(1, ge=1, json_schema_extra=_fix("an integer >= 1"))
    max_grad_norm: float | None = Field(
        1.0, gt=0, json_schema_extra=_fix("a positive number (1.0), or null to disable clipping")
    )
    warmup_steps: int = Field(0, ge=0, json_schema_extra=_fix("an integer >= 0 and below optimization.steps"))
    scheduler: Literal["constant", "linear", "cosine"] = Field(
        "linear", json_schema_extra=_fix("'constant', 'linear' or 'cosine'")
    )
    weight_decay: float = Field(0.0, ge=0, json_schema_extra=_fix("a number >= 0; 0.0 is usual for LoRAs"))
    gradient_checkpointing: bool | int | Literal["auto"] = Field(
        False,
        json_schema_extra=_fix(
            "true (every transformer block recomputes its activations: least memory), false (none: fastest), a "
            "number of blocks, or 'auto' (the fewest that fit the card, found at the first steps)"
        ),
    )
    compile: bool | Literal["auto"] = Field(
        False,
        json_schema_extra=_fix("true compiles each transformer block with torch.compile (the first step compiles), "
                               "'auto' does so on a GPU only, false never"),
    )
    activation_memory_budget: float = Field(
        1.0, gt=0, le=1,
        json_schema_extra=_fix("a number in (0, 1]: with compiled blocks, the share of a block's activations its "
                               "backward keeps; lower recomputes the cheapest of the rest (1.0: the compiler's choice)"),
    )
    mixed_precision: Literal["no", "bf16"] = Field("no", json_schema_extra=_fix("'bf16' on a GPU, 'no' on a CPU"))
    seed: int = Field(42, json_schema_extra=_fix("an integer"))
    distributed: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        json_schema_extra=_fix(
            "'auto' (ddp under torchrun / accelerate launch), 'ddp' (full base on every GPU, LoRA gradients "
            "all-reduced) or 'fsdp' (base weights sharded across GPUs)"
        ),
    )

    @model_validator(mode="after")
    def _recompute_blocks(self) -> OptimizationConfig:
        gc = self.gradient_checkpointing
        if not isinstance(gc, bool) and isinstance(gc, int) and gc < 0:
            raise PydanticCustomError(
                "recompute_blocks",
                "{value} blocks: give true, false, 'auto' or a number of blocks >= 0",
                {"value": gc, "field": "optimization.gradient_checkpointing"},
            )
        return self

    @model_validator(mode="after")
    def _warmup_fits(self) -> OptimizationConfig:
        if self.warmup_steps >= self.steps:
            raise PydanticCustomError(
                "warmup_too_long",
                "{warmup} must be below optimization.steps ({steps}): "
                "lower warmup_steps (a few percent of steps is typical) or raise steps",
                {"warmup": self.warmup_steps, "steps": self.steps, "field": "optimization.warmup_steps"},
            )
        return self


class LoraConfig(_Section):
    """The low-rank adapter: its size and where it is inserted."""

    rank: int = Field(128, gt=0, json_schema_extra=_fix("a positive integer; 16-128 is typical, 128 for identity"))
    alpha: float = Field(128.0, gt=0, json_schema_extra=_fix("a positive number; usually equal to rank"))
    dropout: float = Field(0.0, ge=0.0, lt=1.0, json_schema_extra=_fix("a probability in [0, 1); usually 0.0"))
    target_modules: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        min_length=1,
        json_schema_extra=_fix("a list of module-name suffixes such as 'to_q' or 'audio_ff.net.2'"),
    )


class ValidationConfig(_Section):
    """Samples rendered during training to watch the identity emerge (and drift)."""

    @model_validator(mode="after")
    def _guidance_settings(self) -> ValidationConfig:
        if self.guidance is not None:
            from ltxic.sampling.guidance import Guidance

            try:
                Guidance.from_dict(self.guidance)
            except (TypeError, ValueError) as err:
                raise PydanticCustomError("guidance", "validation.guidance: {err}", {"err": str(err)}) from None
        return self

    interval: int = Field(500, ge=0, json_schema_extra=_fix("an integer >= 0: every N steps; 0 disables"))
    reference_image: InputFile | None = Field(
        None, json_schema_extra=_fix("a face image of the subject (a held-out portrait is best)")
    )
    reference_audio: InputFile | None = Field(
        None, json_schema_extra=_fix("5-15 s of the subject's clean speech (wav)")
    )
    prompts: list[str] = Field(default_factory=list, json_schema_extra=_fix("a list of captions to render"))
    num_inference_steps: int = Field(30, ge=1, json_schema_extra=_fix("an integer >= 1; 30 for the real model"))
    guidance: dict[str, Any] | None = Field(
        None, json_schema_extra=_fix("null for the model's defaults (LTX-2.3's official guidance; the tiny kit's), or a "
                                     "mapping of ltxic.sampling.guidance.Guidance settings: video: {cfg, stg, stg_blocks, "
                                     "modality, rescale, skip_step}, audio: {...}, reference_video, reference_audio")
    )
    seed: int = Field(42, json_schema_extra=_fix("an integer"))
    resolution: ResolutionBucket | None = Field(
        None, json_schema_extra=_fix("'WIDTHxHEIGHTxFRAMES', or null for the first training bucket")
    )
    embedders: Literal["auto", "real", "toy", "user"] = Field(
        "auto", json_schema_extra=_fix("auto (toy for a synthetic dataset, real otherwise), real (needs "
                                       "pip install -e '.[metrics]'), toy, or user (with face_weights / voice_weights)")
    )
    face_weights: InputFile | None = Field(
        None, json_schema_extra=_fix("an ArcFace ONNX recogniser file (insightface's w600k_r50.onnx), or null")
    )
    voice_weights: InputPath | None = Field(
        None, json_schema_extra=_fix("a folder with speechbrain's ECAPA embedding_model.ckpt, or null")
    )


class OutputConfig(_Section):
    """Where checkpoints, samples and logs go, and how many checkpoints are kept."""

    dir: ConfigPath = Field(Path("outputs/run"), json_schema_extra=_fix("a folder for this run's outputs"))
    checkpoint_interval: int = Field(
        500, ge=0, json_schema_extra=_fix("an integer >= 0: save every N steps; 0 saves only the final one")
    )
    keep_last_n: int | None = Field(
        None, ge=1, json_schema_extra=_fix("an integer >= 1, or null to keep every checkpoint")
    )


class TrainingConfig(_Section):
    """A whole training run. Load with :func:`load_config`; save with :meth:`to_yaml`."""

    model: ModelConfig
    dataset: DatasetConfig
    training_strategy: TrainingStrategyConfig
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # A YAML section whose keys are all commented out parses as None: treat it as "all defaults".
        if isinstance(data, dict):
            data = {k: ({} if v is None and k in cls.model_fields else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _cross_section(self) -> TrainingConfig:
        problems = _cross_section_problems(self)
        if problems:
            raise PydanticCustomError(
                "cross_section",
                "{summary}",
                {"summary": "; ".join(f"{k}: {m}" for k, m in problems), "items": problems},
            )
        return self

    @property
    def validation_resolution(self) -> ResolutionBucket:
        """The size validation samples are rendered at (``validation.resolution`` or the first bucket)."""
        return self.validation.resolution or self.dataset.resolution_buckets[0]

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        check_files: bool = True,
        source: str = "<dict>",
    ) -> TrainingConfig:
        """Validate a plain dict; relative paths resolve against ``base_dir`` (default: the current folder).

        Raises :class:`ConfigError` listing every problem, ``source`` naming where the dict came from.
        """
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        if not isinstance(data, dict):
            raise ConfigError(source, [("(top level)", f"expected a mapping of sections, got {type(data).__name__}")])
        try:
            return cls.model_validate(data, context={"base_dir": base, "check_files": check_files})
        except ValidationError as err:
            raise ConfigError(source, _problems_from(err)) from None

    def with_overrides(self, overrides: Mapping[str, Any], *, check_files: bool = False) -> TrainingConfig:
        """A copy with dotted fields replaced and validated again: ``{"optimization.steps": 60, "output.dir": "run"}``.

        What a lesson's parameters change in a shipped config. Relative paths among the new values resolve against
        the current folder. Raises :class:`ConfigError` naming each unknown field or bad value.
        """
        data = self.model_dump(mode="json")
        unknown = []
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if not isinstance(data.get(section), dict) or name not in data[section]:
                fields = ", ".join(f"{section}.{n}" for n in data[section]) if isinstance(data.get(section), dict) else \
                    ", ".join(data)
                unknown.append((key, f"no such field; write section.field, one of: {fields}"))
                continue
            data[section][name] = value
        if unknown:
            raise ConfigError("overrides", unknown)
        return TrainingConfig.from_dict(data, base_dir=Path.cwd(), check_files=check_files, source="overrides")

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write this config as YAML (atomically); paths are written relative to the file's folder."""
        path = Path(path)
        data = self.model_dump(mode="json")
        folder = Path(os.path.abspath(path.parent))
        for section, key in _PATH_FIELDS:
            value = data[section].get(key)
            if value is not None:
                data[section][key] = _portable(Path(value), folder)
        text = f"# ltxic training config (written by TrainingConfig.to_yaml)\n{yaml.safe_dump(data, sort_keys=False)}"
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


_PATH_FIELDS = (
    ("model", "checkpoint"),
    ("model", "text_encoder"),
    ("dataset", "dataset_file"),
    ("dataset", "cache_dir"),
    ("validation", "reference_image"),
    ("validation", "reference_audio"),
    ("validation", "face_weights"),
    ("validation", "voice_weights"),
    ("output", "dir"),
)


def _portable(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it is nearby (at most two levels up), else absolute."""
    if not path.is_absolute():
        path = Path(os.path.abspath(path))
    try:
        rel = os.path.relpath(path, folder)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if Path(rel).parts[:3].count("..") <= 2 else str(path)


def _cross_section_problems(cfg: TrainingConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    v = cfg.validation
    if v.interval > 0:
        name = cfg.training_strategy.name
        if not v.prompts:
            out.append(("validation.prompts", "validation is on but no prompts are given: add a few captions "
                        "(or set validation.interval: 0)"))
        if name in ("ic", "audio_ref_only_ic") and v.reference_image is None:
            out.append(("validation.reference_image", f"the {name} strategy validates from a reference image: "
                        "set validation.reference_image (or validation.interval: 0)"))
        if name == "audio_ref_only_ic" and v.reference_audio is None:
            out.append(("validation.reference_audio", "the audio_ref_only_ic strategy validates with a reference "
                        "voice clip: set validation.reference_audio (or validation.interval: 0)"))
    if v.embedders == "user" and v.face_weights is None and v.voice_weights is None:
        out.append(("validation.embedders", "user embedders need validation.face_weights (an ArcFace ONNX file) "
                    "and/or validation.voice_weights (an ECAPA folder); or use auto"))
    return out


# --------------------------------------------------------------------------------------------------------
# Errors


class ConfigError(InputError, ValueError):
    """Every problem of one config, each naming its field, the bad value and the fix.

    ``problems`` holds ``(dotted_field, message)`` pairs for programs; ``str()`` is for people.
    """

    def __init__(self, source: str | os.PathLike[str], problems: list[tuple[str, str]]):
        self.source = str(source)
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{self.source}: {n} problem{'s' if n != 1 else ''} in the training config:"]
        lines += [f"  - {field}: {message}" for field, message in self.problems]
        super().__init__("\n".join(lines))


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _field_at(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The model class holding the field at ``loc`` and that field's FieldInfo (or None)."""
    cls: type[BaseModel] | None = TrainingConfig
    info = None
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        info = cls.model_fields.get(part)
        if info is None:
            return cls, None
        nested = _model_in(info.annotation)
        if nested is not None:
            cls = nested
        else:
            return cls, info
    return cls, info


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _literal_values(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    out: list[str] = []
    for arg in get_args(annotation):
        out += _literal_values(arg)
    return out


def _suggest(word: Any, choices: list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


# Our own errors that already show the value / already say how to fix it.
_OWN_VALUE_KINDS = {
    "file_missing", "file_is_dir", "bucket_invalid", "bucket_format", "warmup_too_long", "checkpoint_format"
}
_COMPLETE_KINDS = {"bucket_invalid", "model_missing", "checkpoint_format", "warmup_too_long"}


def _problems_from(err: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for e in err.errors(include_url=False):
        loc, kind, value = tuple(e["loc"]), e["type"], e.get("input")
        field = (e.get("ctx") or {}).get("field") or _dotted(loc)
        if kind == "cross_section":
            problems += list(e["ctx"]["items"])
            continue
        if kind == "extra_forbidden":
            parent, _ = _field_at(loc[:-1])
            known = sorted(parent.model_fields) if parent is not None else []
            problems.append((field, f"unknown key '{loc[-1]}'.{_suggest(str(loc[-1]), known)} "
                                    f"Known keys here: {', '.join(known)}"))
            continue
        _, info = _field_at(loc)
        extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        fix = extra.get("fix", "")
        if kind == "missing" and len(loc) == 1:
            problems.append((field, f"required section missing: add a '{field}:' section "
                                    "(the shipped examples in ltxic/configs/ show one)"))
            continue
        if kind == "missing":
            problems.append((field, f"required but missing. Set it to {fix}" if fix else "required but missing"))
            continue
        if kind == "literal_error":
            choices = _literal_values(info.annotation) if info is not None else []
            what = "unknown strategy" if loc[-1] == "name" else f"unknown {loc[-1]}"
            problems.append((field, f"{what} {value!r}; valid: {', '.join(choices)}.{_suggest(value, choices)}"))
            continue
        message = e["msg"]
        if kind not in _OWN_VALUE_KINDS and not isinstance(value, dict):
            message += f" (got {value!r})"
        if fix and kind not in _COMPLETE_KINDS:
            message += f". Fix: {fix}"
        problems.append((field, message))
    return problems


# --------------------------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (first on line {seen[key] + 1}); keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file safely; a syntax error becomes a :class:`ConfigError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, [("(file)", f"config file not found: {Path(os.path.abspath(path))}")])
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        problem = getattr(err, "problem", None) or str(err)
        advice = "indent with spaces, write 'key: value', quote values containing ':' or '#'"
        raise ConfigError(path, [(where, f"YAML syntax error: {problem}. Fix the YAML there ({advice})")]) from None


def load_config(
    path: str | os.PathLike[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> TrainingConfig:
    """Load and validate a training config from YAML.

    Relative paths resolve against ``base_dir``, by default the YAML file's folder. ``check_files=False``
    skips the existence checks of input files (dataset, checkpoint, text encoder, validation references).
    Raises :class:`ConfigError` listing every problem.
    """
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        raise ConfigError(path, [("(top level)", "the file is empty: start from one of ltxic/configs/*.yaml")])
    base = Path(base_dir) if base_dir is not None else Path(os.path.abspath(path.parent))
    return TrainingConfig.from_dict(data, base_dir=base, check_files=check_files, source=str(path))


def example_config(name: str) -> Path:
    """The path of a shipped example config: ``tiny_cpu``, ``ltx23_h100`` or ``ltx23_24gb``."""
    folder = resources.files("ltxic") / "configs"
    names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name.removesuffix(".yaml") not in names:
        raise KeyError(f"no example config {name!r}; choose one of {names}.{_suggest(name, names)}")
    return Path(str(folder / f"{name.removesuffix('.yaml')}.yaml"))
