"""dataset.json: its schema, consent records, a validation report, and pairing a folder of clips into a dataset.

Paths inside dataset.json are relative to the json file's folder. Every identity whose reference media are used
carries a consent record listing the media it covers (``face``, ``voice``); tools refuse media without one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltxic.io_utils import write_json_atomic

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


class Dataset(BaseModel):
    """The dataset.json document (extra top-level keys, e.g. notes, are kept)."""

    model_config = ConfigDict(extra="allow")
    version: Literal[1] = 1
    identities: dict[str, IdentityRecord]
    entries: list[Entry]

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
class ValidationReport:
    dataset: Path
    entries: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def usable_entries(self) -> list[int]:
        bad = {p.entry for p in self.errors}
        return [i for i in range(self.entries) if i not in bad]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": str(self.dataset), "entries": self.entries, "ok": self.ok,
                "problems": [asdict(p) for p in self.problems]}

    def to_markdown(self) -> str:
        lines = [f"# {self.dataset.name}: {self.entries} entries, {len(self.errors)} error(s), "
                 f"{len(self.problems) - len(self.errors)} warning(s)", "",
                 "| entry | field | severity | problem | detail |", "|---|---|---|---|---|"]
        for p in self.problems:
            cells = ["-" if p.entry is None else str(p.entry), p.field, p.severity, p.problem, p.detail]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


_CAPTION_PROBLEM = {"trait": "trait_caption", "gender": "trait_caption", "reference_conflict": "trait_caption"}


def validate_dataset(
    path: str | os.PathLike[str],
    *,
    check_media: bool = True,
    min_clip_seconds: float = 1.0,
    voice_seconds: tuple[float, float] = (5.0, 15.0),
    silence_peak: float = 1e-4,
) -> ValidationReport:
    """Check files, media, consent and captions of every entry; one :class:`Problem` per finding.

    Errors (missing or unreadable file, missing consent, clip under ``min_clip_seconds``, silent voice reference,
    unknown identity) make an entry unusable; caption issues and voice length outside ``voice_seconds`` are warnings.
    """
    from ltxic.captions import check_captions

    path = Path(path)
    ds = load_dataset(path)
    root = path.parent
    report = ValidationReport(path, len(ds.entries))
    add = report.problems.append
    media_cache: dict[str, Problem | None] = {}
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
            file = root / rel
            if not file.is_file():
                add(Problem(i, fld, "missing_file", f"{rel} does not exist (looked in {root})"))
                continue
            if check_media:
                key = f"{fld}:{file}"
                if key not in media_cache:
                    media_cache[key] = _check_media(fld, rel, file, min_clip_seconds, voice_seconds, silence_peak)
                found = media_cache[key]
                if found is not None:
                    add(Problem(i, found.field, found.problem, found.detail, found.severity))
    captions = check_captions([e.model_dump() for e in ds.entries],
                              {k: v.model_dump(mode="json") for k, v in ds.identities.items()})
    seen: set[tuple[int, str]] = set()
    for issue in captions.flagged:
        code = _CAPTION_PROBLEM.get(issue.kind, issue.kind)
        if (issue.entry, code) in seen:
            continue
        seen.add((issue.entry, code))
        detail = "; ".join(f"{x.message}" + (f" ({x.match!r})" if x.match else "")
                           for x in captions.for_entry(issue.entry) if _CAPTION_PROBLEM.get(x.kind, x.kind) == code)
        detail += f"; {issue.suggestion}" if issue.suggestion else ""
        add(Problem(issue.entry, "caption", code, detail, "warning"))
    report.problems.sort(key=lambda p: (-1 if p.entry is None else p.entry, p.field))
    return report


def _check_media(fld: str, rel: str, file: Path, min_clip: float, voice_range: tuple[float, float],
                 silence_peak: float) -> Problem | None:
    from ltxic.media import MediaError, probe_video, read_audio, read_image

    try:
        if fld == "video_path":
            info = probe_video(file)
            if info.duration < min_clip:
                return Problem(None, fld, "clip_too_short",
                               f"{rel}: {info.frames} frames at {info.fps:g} fps = {info.duration:.2f} s, "
                               f"under the {min_clip:g} s minimum")
        elif fld == "reference_image":
            read_image(file)
        else:
            wave, sr = read_audio(file)
            seconds = wave.shape[-1] / sr
            if float(wave.abs().max()) < silence_peak:
                return Problem(None, fld, "silent_reference_audio",
                               f"{rel}: {seconds:.1f} s of silence (peak below {silence_peak:g}); no voice to learn from")
            lo, hi = voice_range
            if not lo <= seconds <= hi:
                return Problem(None, fld, "reference_audio_length",
                               f"{rel}: {seconds:.1f} s; use {lo:g}-{hi:g} s of clean speech", "warning")
    except MediaError as err:
        return Problem(None, fld, "unreadable_media", str(err))
    return None


# ---------------------------------------------------------------- pairing


def pair_folder(
    clips_dir: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    identity: str,
    consent: ConsentRecord | dict[str, Any],
    voice_dir: str | os.PathLike[str] | None = None,
    reference_image: str | os.PathLike[str] | None = None,
    eval_fraction: float = 0.0,
) -> Path:
    """Make dataset.json for one identity from a folder of clips (and voice recordings).

    Each clip ``name.mp4`` takes its caption from ``name.txt`` beside it (empty if absent: the validation report
    flags it). The reference image is ``reference_image`` (a held portrait) or the first frame of the first clip,
    written as ``refs/<identity>.jpg`` beside ``out_json``. Voice clips are assigned round-robin. The last
    ``eval_fraction`` of the clips (sorted by name) are split ``eval``. An existing dataset.json at ``out_json``
    gains this identity (its other identities and entries are kept).
    """
    from ltxic.media import read_image, read_video, write_image

    consent = consent if isinstance(consent, ConsentRecord) else ConsentRecord.model_validate(consent)
    needed = {"face"} | ({"voice"} if voice_dir else set())
    if not needed <= set(consent.media):
        raise ConsentError(f"consent for {identity!r} covers {consent.media}, pairing needs {sorted(needed)}")
    clips_dir, out_json = Path(clips_dir), Path(out_json)
    clips = sorted(p for p in clips_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise DatasetError(f"{clips_dir}: no video clips ({', '.join(VIDEO_SUFFIXES)}) found")
    voices = sorted(p for p in Path(voice_dir).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES) if voice_dir else []
    if voice_dir and not voices:
        raise DatasetError(f"{voice_dir}: no voice recordings ({', '.join(AUDIO_SUFFIXES)}) found")
    root = out_json.parent
    ref = root / "refs" / f"{identity}.jpg"
    img = read_image(reference_image) if reference_image else read_video(clips[0])[0]
    write_image(ref, img)

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p.resolve(), root.resolve())).as_posix()

    n_eval = int(round(len(clips) * eval_fraction))
    entries = []
    for k, clip in enumerate(clips):
        txt = clip.with_suffix(".txt")
        entries.append({
            "identity": identity, "video_path": rel(clip), "reference_image": rel(ref),
            "reference_audio": rel(voices[k % len(voices)]) if voices else None,
            "caption": txt.read_text(encoding="utf-8").strip() if txt.is_file() else "",
            "split": "eval" if k >= len(clips) - n_eval else "train",
        })
    data: dict[str, Any] = {"version": 1, "identities": {}, "entries": []}
    if out_json.is_file():
        data = json.loads(out_json.read_text(encoding="utf-8"))
        data["entries"] = [e for e in data.get("entries", []) if e.get("identity") != identity]
    data["identities"][identity] = {"consent": consent.model_dump(mode="json", exclude_none=True)}
    data["entries"].extend(entries)
    return write_json_atomic(out_json, data)
