"""dataset.json: its schema, consent records, a validation report, and pairing folders of clips into a dataset.

Paths inside dataset.json are relative to the json file's folder. Every identity whose reference media are used
carries a consent record listing the media it covers (``face``, ``voice``); tools refuse media without one.
A dataset may declare its own validation ``rules`` (e.g. the toy world's 2 s clips); otherwise the defaults for
real footage apply (clips of 3-10 s, voice references of 5-15 s, the H100 config's resolution buckets).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltxic.config import ResolutionBucket
from ltxic.faces import FaceDetector, make_face_detector
from ltxic.io_utils import atomic_path, sha256_file, write_json_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class DatasetError(ValueError):
    """dataset.json is malformed; the message names the file, the field and the fix."""


class ConsentError(PermissionError):
    """Reference media of an identity are used without a consent record that covers them."""


class ConsentRecord(BaseModel):
    """Who agreed to what: required for every identity whose face or voice is used."""

    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, description="who is shown or heard")
    granted_by: str = Field(min_length=1, description="who gave the consent (the subject or their representative)")
    media: list[Literal["face", "voice"]] = Field(min_length=1, description="which of the subject's media may be used")
    date: dt.date = Field(description="when consent was given (YYYY-MM-DD)")
    scope: str = Field(min_length=1, description="what the media may be used for")
    synthetic: bool = Field(False, description="true for generated characters (the toy world)")
    notes: str | None = None


class IdentityRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent: ConsentRecord | None = None


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity: str = Field(min_length=1)
    video_path: str = Field(min_length=1)
    reference_image: str | None = None
    reference_audio: str | None = None
    caption: str
    split: Literal["train", "eval"] = "train"


@lru_cache(maxsize=1)
def default_buckets() -> tuple[ResolutionBucket, ...]:
    """The resolution buckets of the shipped real-footage config (``ltxic/configs/ltx23_h100.yaml``)."""
    import yaml

    path = Path(__file__).parent / "configs" / "ltx23_h100.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(ResolutionBucket.parse(b) for b in raw["dataset"]["resolution_buckets"])


class ValidationRules(BaseModel):
    """What :func:`validate_dataset` checks against; the defaults are for real footage.

    A dataset.json may carry a ``rules`` block with any of these fields (the toy dataset declares its 2 s clips
    and its training bucket); fields it leaves out keep their defaults.
    """

    model_config = ConfigDict(extra="forbid")
    clip_seconds: tuple[float, float] = Field((3.0, 10.0), description="allowed clip duration [min, max] in s")
    voice_seconds: tuple[float, float] = Field((5.0, 15.0), description="voice reference duration [min, max] in s")
    buckets: list[ResolutionBucket] | None = Field(
        None, description="training buckets 'WxHxF' (null: those of ltxic/configs/ltx23_h100.yaml)")
    face_detector: Literal["auto", "haar", "toy"] = Field(
        "auto", description="auto: the toy locator when every consent record is synthetic, else Haar")
    face_samples: int = Field(8, ge=1, description="frames sampled per clip for the face and lighting checks")
    min_face_fraction: float = Field(0.8, ge=0.0, le=1.0, description="share of sampled frames with a face")
    lighting_z: float = Field(2.5, gt=0, description="robust z-score (log luminance) beyond which a clip is flagged")
    lighting_min_spread_stops: float = Field(
        0.5, ge=0, description="floor on the spread used for the z-score, in stops (factors of 2 in luminance)")
    silence_peak: float = Field(1e-4, gt=0, description="a recording whose peak is below this is silent")
    quiet_dbfs: float = Field(-40.0, description="voice references quieter than this RMS level are flagged")
    max_clipped_fraction: float = Field(0.001, ge=0, description="share of samples at |x| >= 0.999 allowed")
    min_speech_fraction: float = Field(0.4, ge=0, le=1, description="share of a voice reference that is speech")
    duplicate_frame_diff: float = Field(
        1.5, ge=0, description="mean grey-level difference (0-255, 16x16 thumbnails) under which clips are duplicates")
    fps_tolerance: float = Field(0.01, ge=0, description="relative fps difference tolerated across clips")

    @field_validator("clip_seconds", "voice_seconds")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1]:
            raise ValueError(f"{list(v)} is not a range: write [min, max] with 0 <= min < max")
        return v

    @field_validator("buckets")
    @classmethod
    def _some_buckets(cls, v: list[ResolutionBucket] | None) -> list[ResolutionBucket] | None:
        if v is not None and not v:
            raise ValueError("an empty bucket list: give at least one 'WxHxF' bucket, or null for the defaults")
        return v

    def bucket_list(self) -> list[ResolutionBucket]:
        return list(self.buckets) if self.buckets else list(default_buckets())

    def describe(self) -> str:
        buckets = ", ".join(str(b) for b in self.bucket_list())
        return (f"clips {self.clip_seconds[0]:g}-{self.clip_seconds[1]:g} s; voice references "
                f"{self.voice_seconds[0]:g}-{self.voice_seconds[1]:g} s; buckets {buckets}; face visible in >= "
                f"{self.min_face_fraction:.0%} of {self.face_samples} sampled frames; lighting within "
                f"{self.lighting_z:g} robust z (spread >= {self.lighting_min_spread_stops:g} stop); voice RMS >= "
                f"{self.quiet_dbfs:g} dBFS; clipped samples <= {self.max_clipped_fraction:.1%}")


class Dataset(BaseModel):
    """The dataset.json document (extra top-level keys, e.g. notes, are kept)."""

    model_config = ConfigDict(extra="allow")
    version: Literal[1] = 1
    identities: dict[str, IdentityRecord]
    entries: list[Entry]
    rules: ValidationRules | None = None

    @property
    def synthetic(self) -> bool:
        """True when every consent record present is marked synthetic (the toy world)."""
        records = [r.consent for r in self.identities.values() if r.consent is not None]
        return bool(records) and all(c.synthetic for c in records)

    @field_validator("entries")
    @classmethod
    def _not_empty(cls, v: list[Entry]) -> list[Entry]:
        if not v:
            raise ValueError("the dataset has no entries; pair some clips first (`ltxic pair`)")
        return v


def _error_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Parse and validate dataset.json; every schema problem is listed with its field path."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: dataset file not found; make one with `ltxic pair`") from err
    except ValueError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    try:
        return Dataset.model_validate(raw)
    except ValidationError as err:
        lines = [f"{path}: {len(err.errors())} problem(s):"]
        for e in err.errors():
            lines.append(f"  {_error_path(e['loc']) or '(top level)'}: {e['msg']}")
        lines.append("  fix: see the dataset.json format in the course (identities with consent, entries, split train|eval)")
        raise DatasetError("\n".join(lines)) from err


def consented_media(dataset: Dataset, identity: str) -> set[str]:
    rec = dataset.identities.get(identity)
    return set(rec.consent.media) if rec is not None and rec.consent is not None else set()


def require_consent(dataset: Dataset, entry: Entry) -> None:
    """Raise :class:`ConsentError` unless the entry's identity consented to every medium the entry uses."""
    needed = {"face"} | ({"voice"} if entry.reference_audio else set())
    missing = needed - consented_media(dataset, entry.identity)
    if missing:
        raise ConsentError(
            f"identity {entry.identity!r} ({entry.video_path}): no consent record covers {sorted(missing)}; "
            f"add identities.{entry.identity}.consent with media {sorted(needed)} before using these media"
        )


# ---------------------------------------------------------------- validation report


@dataclass
class Problem:
    entry: int | None
    field: str
    problem: str
    detail: str
    severity: str = "error"  # error: the entry must not be used; warning: usable, worth fixing


@dataclass
class ClipStats:
    """Measurements of one video file (shared by every entry that uses it)."""

    path: str
    entries: list[int]
    frames: int
    fps: float
    width: int
    height: int
    duration: float
    luminance: float  # mean Rec. 601 luma (0-255) over the sampled frames
    face_fraction: float  # share of sampled frames where the detector found a face
    sampled_frames: int
    has_audio: bool
    audio_clipped_fraction: float | None
    sha256: str = ""
    thumbnails: np.ndarray | None = field(default=None, repr=False)  # first and middle frame, 16x16 grey


@dataclass
class VoiceStats:
    """Measurements of one voice reference file."""

    path: str
    entries: list[int]
    seconds: float
    speech_seconds: float
    rms_dbfs: float
    peak: float
    clipped_fraction: float


@dataclass
class ValidationReport:
    dataset: Path
    entries: int
    problems: list[Problem] = field(default_factory=list)
    rules: ValidationRules = field(default_factory=ValidationRules)
    rules_source: str = "defaults for real footage"
    face_detector: str = ""
    clips: list[ClipStats] = field(default_factory=list)
    voices: list[VoiceStats] = field(default_factory=list)
    identity: list[Any] | None = None  # ltxic.dataset_identity.ClipIdentity per entry, when identity was checked
    embedders: dict[str, Any] | None = None  # the embedders that measured it

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def usable_entries(self) -> list[int]:
        bad = {p.entry for p in self.errors}
        return [i for i in range(self.entries) if i not in bad]

    def to_dict(self) -> dict[str, Any]:
        def clip(c: ClipStats) -> dict[str, Any]:
            return {k: v for k, v in asdict(c).items() if k != "thumbnails"}

        return {"dataset": str(self.dataset), "entries": self.entries, "ok": self.ok,
                "rules": self.rules.model_dump(mode="json"), "rules_source": self.rules_source,
                "face_detector": self.face_detector, "problems": [asdict(p) for p in self.problems],
                "clips": [clip(c) for c in self.clips], "voices": [asdict(v) for v in self.voices],
                "embedders": self.embedders,
                "identity": None if self.identity is None else [r.to_dict() for r in self.identity]}

    def summary(self) -> str:
        """A few lines: what was checked against which rules, the media at a glance, the verdict."""
        lines = [f"{self.dataset.name}: {self.entries} entries, {len(self.errors)} error(s), "
                 f"{len(self.warnings)} warning(s); {len(self.usable_entries())} usable",
                 f"rules ({self.rules_source}): {self.rules.describe()}"]
        if self.clips:
            sizes = _counts(f"{c.width}x{c.height}" for c in self.clips)
            rates = _counts(f"{c.fps:g} fps" for c in self.clips)
            d = [c.duration for c in self.clips]
            f = [c.frames for c in self.clips]
            faces = [c.face_fraction for c in self.clips]
            lum = [c.luminance for c in self.clips]
            lines += [
                f"clips: {len(self.clips)} files; sizes {sizes}; {rates}; {min(d):.2f}-{max(d):.2f} s, "
                f"{min(f)}-{max(f)} frames (smallest bucket: {min(b.frames for b in self.rules.bucket_list())})",
                f"faces ({self.face_detector} detector): visible in {min(faces):.0%}-{max(faces):.0%} of sampled "
                f"frames; luminance {min(lum):.0f}-{max(lum):.0f} (median {float(np.median(lum)):.0f})",
            ]
        if self.voices:
            lv = [v.rms_dbfs for v in self.voices]
            sv = [v.seconds for v in self.voices]
            lines.append(f"voice references: {len(self.voices)} files, {min(sv):.1f}-{max(sv):.1f} s, "
                         f"RMS {min(lv):.1f} to {max(lv):.1f} dBFS")
        if self.identity is not None and self.embedders is not None:
            def span(key: str, fmt: str) -> str:
                vals = [getattr(r, key) for r in self.identity if getattr(r, key) is not None]
                return f"{format(min(vals), fmt)} to {format(max(vals), fmt)}" if vals else "not measured"

            e = self.embedders
            lines.append(f"identity ({e['kind']} embedders: {e['face']}, {e['voice']}): face similarity "
                         f"{span('face_similarity', '.3f')} (same person >= {e['face_threshold']}), voice "
                         f"{span('voice_similarity', '.3f')} (>= {e['voice_threshold']}), lip-sync offset "
                         f"{span('lip_sync_offset_ms', '.0f')} ms, correlation {span('lip_sync_correlation', '.2f')}")
        return "\n".join(lines)

    def to_markdown(self, clip_table: bool = False) -> str:
        """Summary, then one table row per problem (and, with ``clip_table``, one row per clip)."""
        lines = [f"# {self.dataset.name}: {self.entries} entries, {len(self.errors)} error(s), "
                 f"{len(self.warnings)} warning(s)", ""]
        lines += [f"- {line}" for line in self.summary().splitlines()[1:]]
        lines += ["", "| entry | field | severity | problem | detail |", "|---|---|---|---|---|"]
        for p in self.problems:
            cells = ["-" if p.entry is None else str(p.entry), p.field, p.severity, p.problem, p.detail]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if clip_table and self.clips:
            lines += ["", "| clip | entries | size | fps | frames | seconds | luminance | face visible | audio |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for c in self.clips:
                audio = "none" if not c.has_audio else f"{c.audio_clipped_fraction:.2%} clipped"
                lines.append(f"| {c.path} | {','.join(map(str, c.entries))} | {c.width}x{c.height} | {c.fps:g} | "
                             f"{c.frames} | {c.duration:.2f} | {c.luminance:.0f} | {c.face_fraction:.0%} | {audio} |")
        if clip_table and self.identity:
            def f(x: Any, fmt: str) -> str:
                return "-" if x is None else format(x, fmt)

            lines += ["", "| entry | clip | identity | face | face found | voice | lip offset (ms) | lip r | face per window |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in self.identity:
                per_window = " ".join(f(w["face_similarity"], ".2f") for w in r.windows)
                lines.append(f"| {r.entry} | {r.path} | {r.identity} | {f(r.face_similarity, '.3f')} | {r.face_found:.0%} | "
                             f"{f(r.voice_similarity, '.3f')} | {f(r.lip_sync_offset_ms, '.0f')} | "
                             f"{f(r.lip_sync_correlation, '.2f')} | {per_window} |")
        return "\n".join(lines) + "\n"


def _counts(items: Any) -> str:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(out.items(), key=lambda kv: -kv[1]))


_CAPTION_PROBLEM = {"trait": "trait_caption", "gender": "trait_caption", "reference_conflict": "trait_caption"}
PLACEHOLDER_CAPTION = "TODO: caption"  # written by pairing when a clip has no NAME.txt; flagged until replaced


def is_placeholder_caption(text: str) -> bool:
    return not text.strip() or text.strip().upper().startswith("TODO")


def resolve_rules(dataset: Dataset, rules: ValidationRules | Mapping[str, Any] | None = None,
                  buckets: Sequence[str | ResolutionBucket] | None = None) -> tuple[ValidationRules, str]:
    """The rules that apply and where they came from: ``rules`` given > the dataset's ``rules`` > defaults;
    ``buckets`` (if given) replaces the bucket list."""
    if rules is not None:
        out, source = (rules if isinstance(rules, ValidationRules) else ValidationRules.model_validate(rules)), "given"
    elif dataset.rules is not None:
        out = dataset.rules
        source = f"dataset.json 'rules' ({', '.join(sorted(dataset.rules.model_fields_set)) or 'none set'}), defaults otherwise"
    else:
        out, source = ValidationRules(), "defaults for real footage"
    if buckets is not None:
        out = out.model_copy(update={"buckets": [ResolutionBucket.parse(b) for b in buckets]})
        source += "; buckets given"
    return out, source


def _pick_detector(dataset: Dataset, rules: ValidationRules, face_detector: str | FaceDetector) -> FaceDetector:
    kind = face_detector
    if kind == "auto":
        kind = rules.face_detector
    if kind == "auto":
        kind = "toy" if dataset.synthetic else "haar"
    return make_face_detector(kind)


def validate_dataset(
    path: str | os.PathLike[str],
    *,
    check_media: bool = True,
    rules: ValidationRules | Mapping[str, Any] | None = None,
    buckets: Sequence[str | ResolutionBucket] | None = None,
    face_detector: str | FaceDetector = "auto",
    progress: bool = False,
    identity: bool | None = None,
    embedders: Any = "auto",
    face_weights: str | os.PathLike[str] | None = None,
    voice_weights: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Check files, media, consent and captions of every entry; one :class:`Problem` per finding and entry.

    Errors make an entry unusable: missing or unreadable file, missing consent, unknown identity, clip shorter
    than the rules' minimum or with fewer frames than the smallest bucket, silent voice reference. Everything
    else is a warning: clip longer than the maximum, face visible in too few sampled frames, lighting outlier,
    fps differing from the rest, resolution below every bucket, quiet / clipped / mostly silent audio,
    duplicate clips, caption issues. The rules are ``rules`` if given, else the dataset's ``rules`` block,
    else the real-footage defaults (:class:`ValidationRules`); ``face_detector`` is ``"auto"``, ``"haar"``,
    ``"toy"`` or a :class:`~ltxic.faces.FaceDetector`.

    ``identity`` (default: on for real footage, off for a synthetic dataset, whose identities hold by
    construction) scores each clip against its references with the identity embedders (``embedders``, chosen by the
    dataset's synthetic marker when ``"auto"``): face and voice similarity and lip sync per clip and per window
    (:mod:`ltxic.dataset_identity`), warning about clips below the same-person thresholds or out of sync.
    """
    from ltxic.captions import check_captions

    path = Path(path)
    ds = load_dataset(path)
    root = path.parent
    rules_used, source = resolve_rules(ds, rules, buckets)
    detector = _pick_detector(ds, rules_used, face_detector)
    report = ValidationReport(path, len(ds.entries), rules=rules_used, rules_source=source,
                              face_detector=getattr(detector, "name", type(detector).__name__))
    add = report.problems.append
    users: dict[tuple[str, str], list[int]] = {}  # (field, relative path) -> entries using that existing file
    for i, e in enumerate(ds.entries):
        if e.identity not in ds.identities:
            add(Problem(i, "identity", "unknown_identity",
                        f"{e.identity!r} is not in 'identities'; add it with a consent record"))
        else:
            needed = {"face"} | ({"voice"} if e.reference_audio else set())
            missing = needed - consented_media(ds, e.identity)
            if missing and ds.identities[e.identity].consent is not None:
                add(Problem(i, "identity", "consent_scope",
                            f"consent of {e.identity!r} does not cover {sorted(missing)}"))
            elif missing:
                add(Problem(i, "identity", "missing_consent",
                            f"identity {e.identity!r} has no consent record in 'identities'; its media must not be used"))
        for fld in ("video_path", "reference_image", "reference_audio"):
            rel = getattr(e, fld)
            if rel is None:
                if fld != "reference_audio":
                    add(Problem(i, fld, "missing_field", f"{fld} is empty; set it (paths relative to {root})"))
                continue
            if not (root / rel).is_file():
                add(Problem(i, fld, "missing_file", f"{rel} does not exist (looked in {root})"))
                continue
            users.setdefault((fld, rel), []).append(i)
    if check_media:
        _check_all_media(root, users, rules_used, detector, report, progress)
        if identity if identity is not None else not ds.synthetic:
            from ltxic.dataset_identity import check_identity

            check_identity(ds, root, report, embedders=embedders, face_weights=face_weights,
                           voice_weights=voice_weights, progress=progress)
    _check_captions(ds, report, check_captions)
    report.problems.sort(key=lambda p: (-1 if p.entry is None else p.entry, p.field, p.problem))
    return report


def _check_captions(ds: Dataset, report: ValidationReport, check_captions: Any) -> None:
    placeholder = {i for i, e in enumerate(ds.entries) if is_placeholder_caption(e.caption)}
    for i in sorted(placeholder):
        report.problems.append(Problem(
            i, "caption", "placeholder_caption",
            f"{ds.entries[i].caption!r} is a placeholder; write the scene and one concrete action, e.g. "
            "'A person slowly turns head left while speaking in a bright room, close-up.' (or a NAME.txt beside "
            "the clip before pairing)", "warning"))
    captions = check_captions([e.model_dump() for e in ds.entries],
                              {k: v.model_dump(mode="json") for k, v in ds.identities.items()})
    seen: set[tuple[int, str]] = set()
    for issue in captions.flagged:
        code = _CAPTION_PROBLEM.get(issue.kind, issue.kind)
        if issue.entry in placeholder or (issue.entry, code) in seen:
            continue
        seen.add((issue.entry, code))
        detail = "; ".join(f"{x.message}" + (f" ({x.match!r})" if x.match else "")
                           for x in captions.for_entry(issue.entry) if _CAPTION_PROBLEM.get(x.kind, x.kind) == code)
        detail += f"; {issue.suggestion}" if issue.suggestion else ""
        report.problems.append(Problem(issue.entry, "caption", code, detail, "warning"))


def sample_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode only the frames at ``indices`` (uint8 RGB); memory stays small for long, large clips."""
    import av

    from ltxic.media import MediaError

    want = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if k in want:
                    out[k] = frame.to_ndarray(format="rgb24")
                if k >= max(want):
                    break
    except (av.error.FFmpegError, OSError, IndexError) as err:
        raise MediaError(f"{path}: decoding failed ({err}); the file is corrupt, truncated or not a video.") from err
    return out


def _luma(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def _thumb(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(_luma(frame), (16, 16), interpolation=cv2.INTER_AREA)


def measure_clip(file: Path, rel: str, rules: ValidationRules, detector: FaceDetector) -> ClipStats:
    """Probe a clip, sample ``rules.face_samples`` frames (face, luminance) and check its audio for clipping."""
    from ltxic.media import probe_video, read_video_audio
    from ltxic.speech import CLIP_LEVEL

    info = probe_video(file)
    n = max(1, info.frames)
    picks = sorted(set(np.linspace(0, n - 1, rules.face_samples).round().astype(int).tolist()) | {0, n // 2})
    frames = sample_frames(file, picks)
    if not frames:
        from ltxic.media import MediaError

        raise MediaError(f"{file}: no frame could be decoded; re-export the clip")
    faces = [bool(detector.detect(frames[k])) for k in sorted(frames)]
    clipped = None
    if info.has_audio:
        audio = read_video_audio(file).numpy()
        clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if audio.size else 0.0
    first, mid = frames[min(frames)], frames.get(n // 2, frames[max(frames)])
    return ClipStats(
        path=rel, entries=[], frames=info.frames, fps=info.fps, width=info.width, height=info.height,
        duration=info.duration, luminance=float(np.mean([_luma(f).mean() for f in frames.values()])),
        face_fraction=sum(faces) / len(faces), sampled_frames=len(faces), has_audio=info.has_audio,
        audio_clipped_fraction=clipped, sha256=sha256_file(file), thumbnails=np.stack([_thumb(first), _thumb(mid)]),
    )


def measure_voice(file: Path, rel: str) -> VoiceStats:
    from ltxic.media import read_audio
    from ltxic.speech import audio_levels

    wave, sr = read_audio(file)
    lv = audio_levels(wave.numpy(), sr)
    return VoiceStats(rel, [], lv.seconds, lv.speech_seconds, lv.rms_dbfs, lv.peak, lv.clipped_fraction)


def _clip_problems(c: ClipStats, rules: ValidationRules) -> list[Problem]:
    out = []
    lo, hi = rules.clip_seconds
    if c.duration < lo:
        out.append(Problem(None, "video_path", "clip_too_short",
                           f"{c.path}: {c.frames} frames at {c.fps:g} fps = {c.duration:.2f} s, under the {lo:g} s minimum"))
    elif c.duration > hi:
        out.append(Problem(None, "video_path", "clip_too_long",
                           f"{c.path}: {c.duration:.2f} s, over the {hi:g} s maximum; cut it into shorter clips "
                           "(training sees one bucket-length window of it)", "warning"))
    buckets = rules.bucket_list()
    smallest = min(buckets, key=lambda b: b.frames)
    if c.frames < smallest.frames:
        out.append(Problem(None, "video_path", "too_few_frames",
                           f"{c.path}: {c.frames} frames, fewer than the smallest bucket's {smallest.frames} "
                           f"({smallest}); use a longer clip or add a bucket with fewer frames (8k+1)"))
    if not any(c.width >= b.width and c.height >= b.height for b in buckets):
        out.append(Problem(None, "video_path", "resolution_below_buckets",
                           f"{c.path}: {c.width}x{c.height} is smaller than every bucket "
                           f"({', '.join(str(b) for b in buckets)}); it would be upscaled", "warning"))
    if c.face_fraction < rules.min_face_fraction:
        out.append(Problem(None, "video_path", "face_not_visible",
                           f"{c.path}: a face was found in {round(c.face_fraction * c.sampled_frames)} of "
                           f"{c.sampled_frames} sampled frames ({c.face_fraction:.0%} < {rules.min_face_fraction:.0%}); "
                           "identity training needs the face clearly visible", "warning"))
    if not c.has_audio:
        out.append(Problem(None, "video_path", "clip_no_audio",
                           f"{c.path}: no audio track; the audio stream has nothing to learn from this clip", "warning"))
    elif c.audio_clipped_fraction is not None and c.audio_clipped_fraction > rules.max_clipped_fraction:
        out.append(Problem(None, "video_path", "clipped_audio",
                           f"{c.path}: {c.audio_clipped_fraction:.2%} of audio samples at full scale "
                           f"(> {rules.max_clipped_fraction:.1%}); re-record or lower the gain", "warning"))
    return out


def _voice_problems(v: VoiceStats, rules: ValidationRules) -> list[Problem]:
    fld = "reference_audio"
    if v.peak < rules.silence_peak:
        return [Problem(None, fld, "silent_reference_audio",
                        f"{v.path}: {v.seconds:.1f} s of silence (peak below {rules.silence_peak:g}); no voice to learn from")]
    out = []
    lo, hi = rules.voice_seconds
    if not lo <= v.seconds <= hi:
        out.append(Problem(None, fld, "reference_audio_length",
                           f"{v.path}: {v.seconds:.1f} s; use {lo:g}-{hi:g} s of clean speech", "warning"))
    if v.rms_dbfs < rules.quiet_dbfs:
        out.append(Problem(None, fld, "quiet_audio",
                           f"{v.path}: RMS {v.rms_dbfs:.1f} dBFS (< {rules.quiet_dbfs:g}); normalise or re-record closer "
                           "to the microphone", "warning"))
    if v.clipped_fraction > rules.max_clipped_fraction:
        out.append(Problem(None, fld, "clipped_audio",
                           f"{v.path}: {v.clipped_fraction:.2%} of samples at full scale (> {rules.max_clipped_fraction:.1%}); "
                           "re-record with lower gain", "warning"))
    if v.seconds > 0 and v.speech_seconds / v.seconds < rules.min_speech_fraction:
        out.append(Problem(None, fld, "mostly_silence",
                           f"{v.path}: speech in {v.speech_seconds:.1f} of {v.seconds:.1f} s "
                           f"(< {rules.min_speech_fraction:.0%}); trim the silence (`ltxic pair` does)", "warning"))
    return out


def lighting_outliers(luminance: Sequence[float], z: float = 2.5, min_spread_stops: float = 0.5) -> list[tuple[int, float, float]]:
    """Indices of clips whose mean luminance is far from the dataset's median: (index, stops off, robust z).

    Luminance is compared in stops (log2), so "twice as bright" and "half as bright" weigh the same. The spread
    is the median absolute deviation (x 1.4826, a standard deviation for normal data), floored at
    ``min_spread_stops``: with z = 2.5 and the 0.5-stop floor a clip must be more than 1.25 stops (a factor of
    2.4) off the median before it is flagged. Deliberate variation in a small range (a dim room next to a bright
    one: the toy world's dim light is 0.56x, 0.84 stop) passes even when most clips are alike and the measured
    spread is tiny; an under- or over-exposed clip (2 stops = 4x off) does not.
    """
    x = np.log2(np.maximum(np.asarray(luminance, np.float64), 1.0))
    if len(x) < 4:  # too few clips to say what is typical
        return []
    med = float(np.median(x))
    spread = max(1.4826 * float(np.median(np.abs(x - med))), min_spread_stops)
    return [(i, float(v - med), float((v - med) / spread)) for i, v in enumerate(x) if abs(v - med) / spread > z]


def _check_all_media(root: Path, users: dict[tuple[str, str], list[int]], rules: ValidationRules,
                     detector: FaceDetector, report: ValidationReport, progress: bool) -> None:
    from tqdm.auto import tqdm

    from ltxic.media import MediaError, read_image

    file_problems: dict[tuple[str, str], list[Problem]] = {}
    for (fld, rel), entries in tqdm(list(users.items()), desc="checking media", unit="file", disable=not progress):
        file = root / rel
        found: list[Problem] = []
        try:
            if fld == "video_path":
                c = measure_clip(file, rel, rules, detector)
                c.entries = entries
                report.clips.append(c)
                found = _clip_problems(c, rules)
            elif fld == "reference_image":
                read_image(file)
            else:
                v = measure_voice(file, rel)
                v.entries = entries
                report.voices.append(v)
                found = _voice_problems(v, rules)
        except MediaError as err:
            found = [Problem(None, fld, "unreadable_media", str(err))]
        file_problems[(fld, rel)] = found
    clips = report.clips
    # fps consistency: clips whose rate differs from the most common one
    if clips:
        rates = [round(c.fps, 3) for c in clips]
        common = max(set(rates), key=rates.count)
        for c in clips:
            if abs(c.fps - common) > rules.fps_tolerance * common:
                file_problems[("video_path", c.path)].append(Problem(
                    None, "video_path", "fps_mismatch",
                    f"{c.path}: {c.fps:g} fps, most clips are {common:g} fps; re-encode at {common:g} fps", "warning"))
    for i, stops, zval in lighting_outliers([c.luminance for c in clips], rules.lighting_z, rules.lighting_min_spread_stops):
        c = clips[i]
        med = float(np.median([k.luminance for k in clips]))
        file_problems[("video_path", c.path)].append(Problem(
            None, "video_path", "lighting_outlier",
            f"{c.path}: mean luminance {c.luminance:.0f} is {abs(stops):.1f} stops {'below' if stops < 0 else 'above'} "
            f"the dataset median {med:.0f} (robust z {zval:+.1f}, limit {rules.lighting_z:g}); re-light or drop it",
            "warning"))
    # duplicates: the same bytes, or first and middle frames nearly identical to an earlier clip's
    for j, c in enumerate(clips):
        for k in range(j):
            o = clips[k]
            if c.sha256 == o.sha256:
                why = "the same bytes as"
            elif (c.thumbnails is not None and o.thumbnails is not None
                  and float(np.abs(c.thumbnails - o.thumbnails).mean(axis=(1, 2)).max()) < rules.duplicate_frame_diff):
                why = "nearly the same frames as"
            else:
                continue
            file_problems[("video_path", c.path)].append(Problem(
                None, "video_path", "duplicate_clip",
                f"{c.path} has {why} {o.path} (entry {o.entries[0]}); keep one of them", "warning"))
            break
    for (fld, rel), found in file_problems.items():
        for i in users[(fld, rel)]:
            for p in found:
                report.problems.append(Problem(i, p.field, p.problem, p.detail, p.severity))


def plot_report(report: ValidationReport) -> Figure:
    """Four panels: clip durations against the allowed range, luminance per clip, voice levels, face visibility."""
    from ltxic.figures import new_figure

    fig = new_figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    outliers = {p.detail.split(":")[0] for p in report.problems if p.problem == "lighting_outlier"}
    ax = axes[0, 0]
    lo, hi = report.rules.clip_seconds
    d = [c.duration for c in report.clips]
    if d:
        ax.hist(d, bins=min(20, max(5, len(d) // 2)), color="tab:blue")
    ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label=f"allowed {lo:g}-{hi:g} s")
    ax.set(title="clip durations", xlabel="seconds", ylabel="clips")
    ax.legend(loc="upper right")

    ax = axes[0, 1]
    lum = [c.luminance for c in report.clips]
    colours = ["tab:red" if c.path in outliers else "tab:blue" for c in report.clips]
    ax.bar(range(len(lum)), lum, color=colours)
    if lum:
        med = float(np.median(lum))
        ax.axhline(med, color="black", lw=1, label=f"median {med:.0f}")
        ax.legend(loc="upper right")
    ax.set(title="mean luminance per clip (red: outlier)", xlabel="clip", ylabel="luma 0-255")

    ax = axes[1, 0]
    floor = -80.0
    lv = [max(v.rms_dbfs, floor) for v in report.voices]
    ax.barh(range(len(lv)), [x - floor for x in lv], left=floor, color="tab:purple")
    ax.set_yticks(range(len(lv)), [Path(v.path).name for v in report.voices], fontsize=7)
    ax.axvline(report.rules.quiet_dbfs, color="tab:red", ls="--", lw=1, label=f"quiet < {report.rules.quiet_dbfs:g} dBFS")
    ax.set(title="voice reference level (RMS)", xlabel="dBFS")
    ax.legend(loc="lower left")

    ax = axes[1, 1]
    ff = [c.face_fraction for c in report.clips]
    ax.bar(range(len(ff)), ff, color=["tab:red" if f < report.rules.min_face_fraction else "tab:green" for f in ff])
    ax.axhline(report.rules.min_face_fraction, color="black", ls="--", lw=1)
    ax.set(title=f"face visible ({report.face_detector} detector)", xlabel="clip", ylabel="share of sampled frames",
           ylim=(0, 1.05))
    fig.suptitle(report.summary().splitlines()[0])
    return fig


def save_report_plots(report: ValidationReport, out_png: str | os.PathLike[str]) -> Path:
    fig = plot_report(report)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)


# ---------------------------------------------------------------- pairing

_ID_SPLIT = re.compile(r"^(?P<identity>.+?)[_-][^_-]+$")


def identity_from_filename(path: str | os.PathLike[str]) -> str:
    """``ava_000.mp4`` -> ``ava``; ``john-smith_take3.mov`` -> ``john-smith``; a name with no ``_``/``-`` is its
    own identity. The identity is the name before the last ``_`` or ``-``."""
    stem = Path(path).stem
    m = _ID_SPLIT.match(stem)
    return m["identity"] if m else stem


def group_by_identity(folder: str | os.PathLike[str], suffixes: Sequence[str],
                      identity: str | None = None) -> dict[str, list[Path]]:
    """Media files of ``folder`` grouped by identity: one sub-folder per identity, or file-name prefixes
    (``ava_000.mp4``) for files directly in ``folder``; with ``identity`` every file belongs to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; give the folder that holds the media files")
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in suffixes:
            continue
        rel = p.relative_to(folder)
        key = identity or (rel.parts[0] if len(rel.parts) > 1 else identity_from_filename(p))
        out.setdefault(key, []).append(p)
    return out


def load_consent_file(path: str | os.PathLike[str] | Mapping[str, Any],
                      identity: str | None = None) -> dict[str, ConsentRecord]:
    """Consent records by identity from YAML/JSON: ``{identity: record}``, ``{identities: {identity: record}}``
    (a dataset.json's own form, ``{identity: {consent: record}}``, also works), or one bare record for
    ``identity``. A record has ``subject``, ``granted_by``, ``media`` (face, voice), ``date``, ``scope``."""
    import yaml

    where = "the consent mapping"
    if isinstance(path, Mapping):
        raw: Any = dict(path)
    else:
        where = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise DatasetError(f"{path}: consent file not found; write one record per identity (subject, "
                               "granted_by, media, date, scope)") from err
        except yaml.YAMLError as err:
            raise DatasetError(f"{path}: not valid YAML/JSON ({err})") from err
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{where}: expected a mapping of identity -> consent record")
    if "subject" in raw:
        if not identity:
            raise DatasetError(f"{where}: holds a single consent record; name its identity (--identity) or write "
                               "'IDENTITY: {subject: ..., granted_by: ..., media: [face, voice], date: ..., scope: ...}'")
        raw = {identity: raw}
    raw = raw.get("identities", raw)
    out: dict[str, ConsentRecord] = {}
    for name, rec in raw.items():
        rec = rec.get("consent", rec) if isinstance(rec, Mapping) else rec
        try:
            out[str(name)] = ConsentRecord.model_validate(rec)
        except ValidationError as err:
            fields = "; ".join(f"{_error_path([name, *e['loc']])}: {e['msg']}" for e in err.errors())
            raise DatasetError(f"{where}: consent record of {name!r} is invalid: {fields}") from err
    return out


def _sample_indices(frames: int, n: int) -> list[int]:
    return sorted(set(np.linspace(0, max(frames, 1) - 1, n).round().astype(int).tolist()))


def pick_reference_frame(clips: Sequence[Path], detector: FaceDetector, *, frames_per_clip: int = 6,
                         max_clips: int = 16) -> tuple[np.ndarray, dict[str, Any]]:
    """The sharpest frame with a roughly centred, frontal face among frames sampled from ``clips``.

    Candidates: frames where the detector finds exactly one face, centred in the middle half of the frame.
    Frontal: the most left-right symmetric 30% of them (a turned head is asymmetric), then those whose box
    aspect is within 8% of the most common aspect among these (a nod shortens the box). Sharpest: the highest
    variance of the Laplacian over the face box. Falls back to the first frame of the first clip when no frame
    has a centred face. (On the toy samples this picks frames with |yaw| and |pitch| under 0.3 rad.)
    """
    from ltxic.faces import centred_face, mirror_asymmetry, sharpness
    from ltxic.media import probe_video

    cands: list[tuple[float, float, float, Path, int, np.ndarray]] = []
    for clip in list(clips)[:max_clips]:
        info = probe_video(clip)
        for k, frame in sample_frames(clip, _sample_indices(info.frames, frames_per_clip)).items():
            box = centred_face(detector.detect(frame), info.width, info.height)
            if box is not None:
                aspect = (box[2] - box[0]) / max(1, box[3] - box[1])
                cands.append((mirror_asymmetry(frame, box), aspect, sharpness(frame, box), clip, k, frame))
    if not cands:
        frame = sample_frames(clips[0], [0])[0]
        return frame, {"source": clips[0].as_posix(), "frame": 0, "how": "first frame (no centred face found)"}
    cands.sort(key=lambda c: c[0])
    symmetric = cands[: max(1, int(round(0.3 * len(cands))))]
    aspects = np.array([c[1] for c in symmetric])
    mode = float(aspects[int(np.argmax([(np.abs(aspects / a - 1) < 0.05).sum() for a in aspects]))])
    frontal = [c for c in symmetric if abs(c[1] / mode - 1) < 0.08]
    _, _, sharp, clip, k, frame = max(frontal, key=lambda c: c[2])
    return frame, {"source": clip.as_posix(), "frame": k, "how": "sharpest centred frontal face",
                   "sharpness": round(sharp, 1), "candidates": len(frontal), "sampled": len(cands)}


def pair_folder(
    clips_dir: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    consent: str | os.PathLike[str] | Mapping[str, Any] | ConsentRecord,
    voice_dir: str | os.PathLike[str] | None = None,
    identity: str | None = None,
    reference: Literal["sharpest", "first"] = "sharpest",
    reference_image: str | os.PathLike[str] | None = None,
    eval_identities: Sequence[str] = (),
    eval_fraction: float = 0.0,
    voice_seconds: tuple[float, float] = (5.0, 15.0),
    rules: ValidationRules | Mapping[str, Any] | None = None,
    face_detector: str | FaceDetector = "auto",
    progress: bool = True,
) -> Path:
    """Make (or extend) dataset.json from a folder of clips and a folder of voice recordings.

    Identities come from one sub-folder per identity or from file-name prefixes (``ava_000.mp4``), or all clips
    are ``identity``. ``consent`` (a YAML/JSON file or a mapping, see :func:`load_consent_file`) must hold a record
    for every identity covering ``face`` (and ``voice`` when recordings are paired): otherwise nothing is written.
    Per identity: the reference image is ``reference_image``, the first frame of the first clip, or the sharpest
    centred frontal frame (:func:`pick_reference_frame`), written to ``refs/<identity>.jpg``; the recordings are
    trimmed, cut or joined into ``voice_seconds`` of speech (:func:`ltxic.speech.choose_voice_segments`) and
    written to ``refs/<identity>_voice_<k>.wav`` (assigned to clips round-robin). Captions come from ``NAME.txt``
    beside each clip, else :data:`PLACEHOLDER_CAPTION` (validation flags it). ``eval_identities`` are split
    ``eval``; otherwise the last ``eval_fraction`` of each identity's clips. An existing dataset.json at
    ``out_json`` keeps its other identities; ``rules`` (if given) becomes its ``rules`` block. Where each
    reference came from is recorded under the top-level ``pairing`` key.
    """
    from ltxic.media import read_audio, read_image, write_audio, write_image
    from ltxic.speech import choose_voice_segments

    clips_dir, out_json = Path(clips_dir), Path(out_json)
    clips = group_by_identity(clips_dir, VIDEO_SUFFIXES, identity)
    if not clips:
        raise DatasetError(f"{clips_dir}: no video clips ({', '.join(VIDEO_SUFFIXES)}) found")
    voices = group_by_identity(voice_dir, AUDIO_SUFFIXES, identity) if voice_dir else {}
    if voice_dir and not voices:
        raise DatasetError(f"{voice_dir}: no voice recordings ({', '.join(AUDIO_SUFFIXES)}) found")
    if reference_image is not None and len(clips) != 1:
        raise DatasetError(f"reference_image={reference_image}: a held portrait needs a single identity; found "
                           f"{sorted(clips)} (pass identity=..., or leave reference_image out)")
    if isinstance(consent, ConsentRecord):
        if not identity:
            raise DatasetError("consent: a single ConsentRecord needs identity=...")
        records, consent_where = {identity: consent}, "the consent record"
    else:
        records = load_consent_file(consent, identity)
        consent_where = str(consent) if not isinstance(consent, Mapping) else "the consent mapping"
    no_voice = sorted(set(clips) - set(voices)) if voice_dir else []
    if no_voice:
        raise DatasetError(f"{voice_dir}: no voice recordings for {no_voice}; add e.g. {no_voice[0]}_0.wav "
                           f"(or a sub-folder {no_voice[0]}/), or pair without voices")
    refused = []
    for name in sorted(clips):
        needed = {"face"} | ({"voice"} if name in voices else set())
        have = set(records[name].media) if name in records else set()
        if not needed <= have:
            what = "has no consent record" if name not in records else f"consent covers {sorted(have)} only"
            refused.append(f"{name!r} ({what}; needs {sorted(needed)})")
    if refused:
        raise ConsentError(
            f"refusing to write reference media: {'; '.join(refused)}. Add each to {consent_where} as "
            "'IDENTITY: {subject: ..., granted_by: ..., media: [face, voice], date: YYYY-MM-DD, scope: ...}'")
    if reference not in ("sharpest", "first"):
        raise ValueError(f"reference={reference!r}: use 'sharpest' or 'first'")
    if isinstance(face_detector, str) and face_detector == "auto":
        face_detector = "toy" if all(records[n].synthetic for n in clips) else "haar"
    detector = make_face_detector(face_detector)

    root = out_json.parent
    sources = {p.resolve() for ps in voices.values() for p in ps}

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p.resolve(), root.resolve())).as_posix()

    from tqdm.auto import tqdm

    entries, provenance = [], {}
    for name in tqdm(sorted(clips), desc="pairing", unit="identity", disable=not progress):
        ref = root / "refs" / f"{name}.jpg"
        if reference_image is not None:
            img, how = read_image(reference_image), {"source": rel(Path(reference_image)), "how": "held portrait"}
        elif reference == "first":
            img, how = sample_frames(clips[name][0], [0])[0], {"source": rel(clips[name][0]), "frame": 0, "how": "first frame"}
        else:
            img, how = pick_reference_frame(clips[name], detector)
            how["source"] = rel(Path(how["source"]))
        write_image(ref, img)
        voice_rel: list[str] = []
        if name in voices:
            recs = []
            for p in voices[name]:
                wave, sr = read_audio(p)
                recs.append((rel(p), wave.numpy(), sr))
            segments = choose_voice_segments(recs, voice_seconds)
            if not segments:
                raise DatasetError(f"{voice_dir}: the recordings of {name!r} ({', '.join(r[0] for r in recs)}) hold "
                                   f"less than {voice_seconds[0]:g} s of speech; record more")
            for k, seg in enumerate(segments):
                dest = root / "refs" / f"{name}_voice_{k}.wav"
                if dest.resolve() in sources:
                    raise DatasetError(f"{dest}: would overwrite a source recording; write dataset.json elsewhere")
                write_audio(dest, seg.wave[None], seg.sample_rate)
                voice_rel.append(rel(dest))
            how = {"reference_image": how, "reference_audio": [
                {"path": v, "seconds": round(s.seconds, 2), "from": s.sources} for v, s in zip(voice_rel, segments)]}
        else:
            how = {"reference_image": how}
        provenance[name] = how
        n = len(clips[name])
        n_eval = n if name in eval_identities else int(round(n * eval_fraction))
        for k, clip in enumerate(clips[name]):
            txt = clip.with_suffix(".txt")
            caption = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
            entries.append({
                "identity": name, "video_path": rel(clip), "reference_image": rel(ref),
                "reference_audio": voice_rel[k % len(voice_rel)] if voice_rel else None,
                "caption": caption or PLACEHOLDER_CAPTION,
                "split": "eval" if k >= n - n_eval else "train",
            })
    data: dict[str, Any] = {"version": 1, "identities": {}, "entries": []}
    if out_json.is_file():
        data = json.loads(out_json.read_text(encoding="utf-8"))
        data["entries"] = [e for e in data.get("entries", []) if e.get("identity") not in clips]
    if rules is not None:
        rules = rules if isinstance(rules, ValidationRules) else ValidationRules.model_validate(rules)
        data["rules"] = rules.model_dump(mode="json", exclude_unset=True)
    for name in sorted(clips):
        data["identities"][name] = {"consent": records[name].model_dump(mode="json", exclude_none=True)}
    data["entries"].extend(entries)
    data.setdefault("pairing", {}).update(provenance)
    Dataset.model_validate(data)  # never write a document load_dataset would reject
    return write_json_atomic(out_json, data)
