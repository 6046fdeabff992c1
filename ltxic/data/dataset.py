"""dataset.json: its schema and consent records (validation: :mod:`ltxic.data.validate`; pairing: :mod:`ltxic.data.pairing`).

Paths inside dataset.json are relative to the json file's folder. Every identity whose reference media are used
carries a consent record listing the media it covers (``face``, ``voice``); tools refuse media without one.
A dataset may declare its own validation ``rules`` (e.g. the toy world's 2 s clips); otherwise the defaults for
real footage apply (clips of 3-10 s, voice references of 5-15 s, the H100 config's resolution buckets).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltxic.data.buckets import ResolutionBucket
from ltxic.io.errors import InputError
from ltxic.io.tables import shown_path


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class DatasetError(InputError, ValueError):
    """dataset.json is malformed; the message names the file, the field and the fix."""


class ConsentError(InputError, PermissionError):
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

    path = Path(__file__).resolve().parents[1] / "configs" / "ltx23_h100.yaml"
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
    allow_outside_paths: bool = Field(
        False, description="true lets entries name files outside the dataset's folder (absolute or '../' paths)")

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


def error_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_dataset_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw dataset.json document (a JSON object); :class:`DatasetError` names what is wrong and the fix."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: dataset file not found; make one with `ltxic pair`") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset "
                           f"{err.start}); re-save it as UTF-8") from err
    except ValueError as err:
        raise DatasetError(f"{path}: not valid JSON ({err}); fix the syntax or make it again with `ltxic pair`") from err
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: the top level is a JSON {type(raw).__name__}, not an object with 'identities' "
                           "and 'entries'; make the file with `ltxic pair` (or see the dataset.json format in the course)")
    return raw


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Parse and validate dataset.json; every schema problem is listed with its field path."""
    path = Path(path)
    raw = read_dataset_json(path)
    try:
        return Dataset.model_validate(raw)
    except ValidationError as err:
        lines = [f"{path}: {len(err.errors())} problem(s):"]
        for e in err.errors():
            lines.append(f"  {error_path(e['loc']) or '(top level)'}: {e['msg']}")
        lines.append("  fix: see the dataset.json format in the course (identities with consent, entries, split train|eval)")
        raise DatasetError("\n".join(lines)) from err


def is_outside(raw: str | os.PathLike[str]) -> bool:
    """True for a path that leaves the dataset's folder: absolute, or climbing out with ``..``."""
    norm = os.path.normpath(str(raw))
    return Path(raw).is_absolute() or norm == ".." or norm.startswith(".." + os.sep)


def locate_media(root: Path, raw: str, allow_outside: bool = False) -> tuple[Path | None, str | None]:
    """``(file, None)`` for a dataset path (relative to the dataset's folder ``root``), or ``(None, problem)``.

    Refused: paths outside ``root`` unless the dataset sets ``allow_outside_paths`` (a dataset.json from elsewhere
    must not make ltxic open ``../../etc/passwd``), symbolic-link loops, missing and empty files."""
    if is_outside(raw) and not allow_outside:
        return None, (f"{raw!r} is outside the dataset's folder {root}; move the file into that folder and give its "
                      "path relative to dataset.json, or set \"allow_outside_paths\": true in dataset.json if you "
                      "trust every path it names")
    p = root / raw
    try:
        p = p.resolve()
    except (OSError, RuntimeError):  # RuntimeError: pathlib's symlink loop (Python < 3.13)
        return None, f"{raw!r} is a symbolic link loop; replace the link by the real file"
    if p.is_symlink() or (not p.exists() and (root / raw).is_symlink()):
        return None, f"{raw!r} is a symbolic link loop or points nowhere; replace the link by the real file"
    if not p.is_file():
        return None, f"{raw!r} does not exist (looked for {shown_path(p)}); fix the path or remove the entry"
    if p.stat().st_size == 0:
        return None, f"{raw!r} is empty (0 bytes); re-export or re-copy it"
    return p, None


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
