"""Validation of a dataset's files, media, consent and captions: one :class:`Problem` per finding and entry.

:func:`check_dataset` measures every clip and voice reference once (duration, frames, face visibility, lighting,
levels, duplicates) and checks consent and captions. The identity checks (is it the reference's person and voice?)
sit a layer above, in :func:`ltxic.identity.dataset_check.validate_dataset`, which runs these checks first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltxic.data.buckets import ResolutionBucket
from ltxic.data.faces import FaceDetector, make_face_detector
from ltxic.io.files import sha256_file



from ltxic.data.captions import is_placeholder_caption
from ltxic.data.dataset import Dataset, ValidationRules, consented_media, is_outside, load_dataset, locate_media
from ltxic.io.media import sample_frames
from ltxic.io.tables import shown_path

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
    rotation: int = 0  # the file's rotation metadata (degrees counter-clockwise), applied on every read


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
    identity: list[Any] | None = None  # ltxic.identity.dataset_check.ClipIdentity per entry, when identity was checked
    embedders: dict[str, Any] | None = None  # the embedders that measured it
    parsed: Any = field(default=None, repr=False, compare=False)  # the Dataset checked (parsed once, shared onward)

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
            faces = [c.face_fraction for c in self.clips if np.isfinite(c.face_fraction)]
            lum = [c.luminance for c in self.clips]
            seen = (f"visible in {min(faces):.0%}-{max(faces):.0%} of sampled frames" if faces else "not looked for")
            lines += [
                f"clips: {len(self.clips)} files; sizes {sizes}; {rates}; {min(d):.2f}-{max(d):.2f} s, "
                f"{min(f)}-{max(f)} frames (smallest bucket: {min(b.frames for b in self.rules.bucket_list())})",
                f"faces ({self.face_detector} detector): {seen}; luminance {min(lum):.0f}-{max(lum):.0f} "
                f"(median {float(np.median(lum)):.0f})",
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


def check_dataset(
    path: str | os.PathLike[str],
    *,
    check_media: bool = True,
    rules: ValidationRules | Mapping[str, Any] | None = None,
    buckets: Sequence[str | ResolutionBucket] | None = None,
    face_detector: str | FaceDetector = "auto",
    faces: bool = True,
    progress: bool = False,
) -> ValidationReport:
    """Check files, media, consent and captions of every entry; one :class:`Problem` per finding and entry.

    Errors make an entry unusable: missing or unreadable file, missing consent, unknown identity, clip shorter
    than the rules' minimum or with fewer frames than the smallest bucket, silent voice reference. Everything
    else is a warning: clip longer than the maximum, face visible in too few sampled frames, lighting outlier,
    fps differing from the rest, resolution below every bucket, quiet / clipped / mostly silent audio,
    duplicate clips, caption issues. The rules are ``rules`` if given, else the dataset's ``rules`` block,
    else the real-footage defaults (:class:`ValidationRules`); ``face_detector`` is ``"auto"``, ``"haar"``,
    ``"toy"`` or a :class:`~ltxic.data.faces.FaceDetector`. ``faces=False`` skips locating faces in sampled frames
    (most of the time on toy clips; it only ever gives the ``face_not_visible`` warning): the check that training
    runs before caching, which needs the errors only.

    The identity checks (face, voice, lip sync against the references) are a layer above:
    :func:`ltxic.identity.dataset_check.validate_dataset` (``ltxic.validate_dataset``) runs this, then them.
    """
    from ltxic.data.captions import check_captions

    path = Path(path)
    ds = load_dataset(path)
    root = path.parent
    rules_used, source = resolve_rules(ds, rules, buckets)
    detector = _pick_detector(ds, rules_used, face_detector) if faces else None
    report = ValidationReport(path, len(ds.entries), rules=rules_used, rules_source=source,
                              face_detector=getattr(detector, "name", type(detector).__name__) if faces else "none",
                              parsed=ds)
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
                    add(Problem(i, fld, "missing_field", f"{fld} is empty; set it (paths relative to {shown_path(root)})"))
                continue
            if is_outside(rel) and not ds.allow_outside_paths:
                add(Problem(i, fld, "outside_dataset", locate_media(root, rel)[1] or rel))
                continue
            if not (root / rel).is_file():  # missing, or a link that loops or points nowhere: say which, with the fix
                add(Problem(i, fld, "missing_file", locate_media(root, rel, allow_outside=True)[1]
                            or f"{rel} does not exist (looked in {shown_path(root)})"))
                continue
            users.setdefault((fld, rel), []).append(i)
    if check_media:
        _check_all_media(root, users, rules_used, detector, report, progress)
    _check_captions(ds, report, check_captions)
    sort_problems(report)
    return report


def sort_problems(report: ValidationReport) -> None:
    """Dataset-wide problems first, then by entry, field and kind."""
    report.problems.sort(key=lambda p: (-1 if p.entry is None else p.entry, p.field, p.problem))


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


def _luma(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def _thumb(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(_luma(frame), (16, 16), interpolation=cv2.INTER_AREA)


def measure_clip(file: Path, rel: str, rules: ValidationRules, detector: FaceDetector | None) -> ClipStats:
    """Probe a clip, sample ``rules.face_samples`` frames (face, luminance) and check its audio for clipping.
    Without a ``detector`` faces are not looked for (``face_fraction`` NaN)."""
    from ltxic.io.media import probe_video, read_video_audio
    from ltxic.data.speech import CLIP_LEVEL

    info = probe_video(file)
    n = max(1, info.frames)
    picks = sorted(set(np.linspace(0, n - 1, rules.face_samples).round().astype(int).tolist()) | {0, n // 2})
    frames = sample_frames(file, picks)
    if not frames:
        from ltxic.io.media import MediaError

        raise MediaError(f"{file}: no frame could be decoded; re-export the clip")
    faces = [bool(detector.detect(frames[k])) for k in sorted(frames)] if detector is not None else []
    clipped = None
    if info.has_audio:
        audio = read_video_audio(file).numpy()
        clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if audio.size else 0.0
    first, mid = frames[min(frames)], frames.get(n // 2, frames[max(frames)])
    return ClipStats(
        path=rel, entries=[], frames=info.frames, fps=info.fps, width=info.width, height=info.height,
        duration=info.duration, luminance=float(np.mean([_luma(f).mean() for f in frames.values()])),
        face_fraction=sum(faces) / len(faces) if faces else float("nan"), sampled_frames=len(frames), has_audio=info.has_audio,
        audio_clipped_fraction=clipped, sha256=sha256_file(file), thumbnails=np.stack([_thumb(first), _thumb(mid)]),
        rotation=info.rotation,
    )


def measure_voice(file: Path, rel: str) -> VoiceStats:
    from ltxic.io.media import read_audio
    from ltxic.data.speech import audio_levels

    wave, sr = read_audio(file)
    lv = audio_levels(wave.numpy(), sr)
    return VoiceStats(rel, [], lv.seconds, lv.speech_seconds, lv.rms_dbfs, lv.peak, lv.clipped_fraction)


def _rotation_problems(c: ClipStats) -> list[Problem]:
    if not c.rotation:
        return []
    return [Problem(None, "video_path", "rotated",
                    f"{c.path}: its metadata rotates it {c.rotation} degrees; ltxic applies that (it trains on the "
                    f"upright {c.width}x{c.height} frames). To store it upright, re-encode it: ffmpeg -i IN -c:a copy OUT",
                    "warning")]


def _clip_problems(c: ClipStats, rules: ValidationRules) -> list[Problem]:
    out = _rotation_problems(c)
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
                     detector: FaceDetector | None, report: ValidationReport, progress: bool) -> None:
    from ltxic.io.progress import progress as tqdm

    from ltxic.io.media import MediaError, read_image

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


