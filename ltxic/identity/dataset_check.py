"""Identity checks of a dataset's clips: is it the reference's person and voice, and is the audio in sync?

:func:`validate_dataset` (``ltxic validate``) runs the data checks (:func:`ltxic.data.validate.check_dataset`), then,
with ``identity=True`` (the default for real footage), these: every entry's clip is scored against its own reference image and voice with the identity embedders
(:mod:`ltxic.identity.embedders`), per clip and per window, and its lip sync is measured. A clip of someone else or a
voice that is not the subject's is an error (``identity_mismatch``, ``voice_mismatch``: the entry must not be trained
on; ``ltxic train`` refuses the dataset) when the embedders' thresholds are trusted to decide (toy embedders on toy
clips; dlib and GE2E: a published operating point and a calibration), a warning with user weights. Audio that
drifted off the picture is a warning with its numbers; a voice recorded at too low a sample rate is an error naming
the rate.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ltxic.data.validate import Problem, ValidationReport, check_dataset, sort_problems

__all__ = ["ClipIdentity", "check_identity", "validate_dataset"]


@dataclass
class ClipIdentity:
    """One entry's clip against its references; ``windows``: one dict per window (time, face, voice, lip sync)."""

    entry: int
    identity: str
    path: str
    face_similarity: float | None
    face_found: float
    voice_similarity: float | None
    lip_sync_offset_ms: float | None
    lip_sync_correlation: float | None
    lip_sync_confidence: float | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(float(x)) else round(float(x), 4)


def check_identity(ds: Any, root: Path, report: Any, *, embedders: Any = "auto", face_weights: Any = None,
                   voice_weights: Any = None, window_s: float = 1.0, faces_per_second: float = 2.0,
                   progress: bool = False) -> None:
    """Score every entry's clip against its references; fill ``report.identity`` / ``report.embedders`` and add
    errors (``identity_mismatch``, ``voice_mismatch`` when ``models.decisive``; ``no_face`` in a reference;
    ``voice_sample_rate``, ``unusable_voice``) and warnings (``audio_offset``; the mismatches otherwise).
    A clip's voice similarity compares its whole speech with the whole reference; per window, each window's.

    Faces are located and embedded ``faces_per_second`` times a second (every frame's mouth is still measured for
    lip sync). Missing optional packages become one warning with the fix, not a failure."""
    from ltxic.io.progress import progress as tqdm

    from ltxic.identity.embedders import MissingExtraError, NoFaceError, SampleRateError, SilentAudioError
    from ltxic.identity.select import identity_models
    from ltxic.io.media import MediaError, probe_video
    from ltxic.identity.metrics import identity_windows

    add = report.problems.append
    try:
        models = identity_models(embedders, dataset=ds, face_weights=face_weights, voice_weights=voice_weights)
    except MissingExtraError as err:
        add(Problem(None, "embedders", "metrics_extra_missing", f"identity checks skipped: {err}", "warning"))
        return
    report.embedders = models.describe()
    rows: list[ClipIdentity] = []
    bad_refs: set[str] = set()
    for i, e in enumerate(tqdm(ds.entries, desc="identity checks", unit="clip", disable=not progress)):
        clip, image = root / e.video_path, root / e.reference_image if e.reference_image else None
        audio = root / e.reference_audio if e.reference_audio else None
        if image is None or not clip.is_file() or not image.is_file() or str(image) in bad_refs:
            continue  # the file checks already report these
        ref_audio = audio if audio is not None and audio.is_file() else None
        try:
            fps = float(probe_video(clip).fps)
            stride = max(1, int(round(fps / faces_per_second)))
            try:
                curve = identity_windows(clip, image, ref_audio, window_s=window_s, embedders=models, frame_stride=stride)
            except (SilentAudioError, SampleRateError) as err:
                code = "voice_sample_rate" if isinstance(err, SampleRateError) else "unusable_voice"
                add(Problem(i, "reference_audio", code, str(err)))
                curve = identity_windows(clip, image, None, window_s=window_s, embedders=models, frame_stride=stride)
        except NoFaceError as err:
            add(Problem(i, "reference_image", "no_face", str(err)))
            bad_refs.add(str(image))
            continue
        except MediaError:
            continue  # reported as unreadable_media
        found = ~np.isnan(curve.per_frame[::stride])
        face = float(np.nanmean(curve.per_frame)) if found.any() else None
        try:
            voice = _clip_voice(models, clip, ref_audio) if curve.voice is not None else None
        except SampleRateError as err:
            add(Problem(i, "video_path", "voice_sample_rate", f"{err}; or drop the clip's audio track"))
            voice = None
        ls = curve.lip_sync
        offset, corr, conf = (ls.offset_ms, ls.correlation, ls.confidence) if ls is not None else (None, None, None)
        row = ClipIdentity(i, e.identity, e.video_path, _num(face), round(float(found.mean()), 4), _num(voice),
                           _num(offset), _num(corr), _num(conf), curve.rows(), curve.lip_sync_note)
        rows.append(row)
        _problems(row, models, fps, add, Problem)
    report.identity = rows


def _clip_voice(models: Any, clip: Path, ref_audio: Path) -> float | None:
    """The clip's whole speech against the whole reference (as the voice model's own verification does)."""
    from ltxic.identity.embedders import SilentAudioError
    from ltxic.io.media import probe_video, read_audio, read_video_audio

    rate = probe_video(clip).audio_sample_rate or 16000
    try:  # at the track's own rate: a low-rate track is named (SampleRateError), not scored as another speaker
        clip_emb = models.voice_reference(read_video_audio(clip), int(rate), source=clip)
    except SilentAudioError:
        return None
    wave, sr = read_audio(ref_audio)
    return float(clip_emb @ models.voice_reference(wave, sr, source=ref_audio))


def _problems(row: ClipIdentity, models: Any, fps: float, add: Any, problem: Any) -> None:
    severity = "error" if models.decisive else "warning"
    trust = ("" if models.decisive else " (user weights: ltxic has not measured their threshold, so this is a warning)")
    if row.face_similarity is not None and row.face_similarity < models.face_threshold:
        d = models.face_distance(row.face_similarity)
        score = f"{row.face_similarity:.3f}" + (f" (distance {d:.3f}, same person below {models.face_distance(models.face_threshold):.2f})"
                                                 if d is not None else "")
        add(problem(row.entry, "video_path", "identity_mismatch",
                    f"{row.path}: the face matches {row.identity!r}'s reference at {score}, below the same-person "
                    f"threshold {models.face_threshold:.2f} of the {models.kind} face embedder: another person (or a face "
                    f"too small, turned or dark). Fix: remove the entry or replace the clip with one of {row.identity!r}; if "
                    f"the clip is right, fix the reference image{trust}", severity))
    if row.voice_similarity is not None and row.voice_similarity < models.voice_threshold:
        add(problem(row.entry, "video_path", "voice_mismatch",
                    f"{row.path}: the clip's voice matches {row.identity!r}'s reference voice at {row.voice_similarity:.3f}, "
                    f"below the threshold {models.voice_threshold:.2f}: another speaker (or music, noise). Fix: remove the "
                    f"entry or replace the clip's audio with {row.identity!r}'s speech; if the clip is right, fix the "
                    f"reference audio{trust}", severity))
    # only a clear peak says where the audio is: a still mouth or unrelated audio gives a low, flat curve
    if (row.lip_sync_offset_ms is not None and (row.lip_sync_correlation or 0) >= 0.5
            and (row.lip_sync_confidence or 0) >= 0.4 and abs(row.lip_sync_offset_ms) > 1500.0 / fps):
        late = "late" if row.lip_sync_offset_ms > 0 else "early"
        add(problem(row.entry, "video_path", "audio_offset",
                    f"{row.path}: the audio is {abs(row.lip_sync_offset_ms):.0f} ms {late} against the mouth (lip-sync "
                    f"correlation {row.lip_sync_correlation:.2f}); re-mux the clip with the audio shifted by "
                    f"{-row.lip_sync_offset_ms:+.0f} ms (ffmpeg -itsoffset)", "warning"))


def validate_dataset(
    path: str | os.PathLike[str],
    *,
    identity: bool | None = None,
    embedders: Any = "auto",
    face_weights: str | os.PathLike[str] | None = None,
    voice_weights: str | os.PathLike[str] | None = None,
    check_media: bool = True,
    progress: bool = False,
    **data_checks: Any,
) -> ValidationReport:
    """Check a dataset's files, media, consent and captions (:func:`ltxic.data.validate.check_dataset`), then its
    identities: one :class:`~ltxic.data.validate.Problem` per finding and entry.

    ``identity`` (default: on for real footage, off for a synthetic dataset, whose identities hold by
    construction) scores each clip against its references with the identity embedders (``embedders``, chosen by the
    dataset's synthetic marker when ``"auto"``): face and voice similarity and lip sync per clip and per window
    (:func:`check_identity`): clips below the same-person thresholds are errors, clips out of sync warnings.
    ``data_checks`` (``rules``, ``buckets``, ``face_detector``) go to :func:`~ltxic.data.validate.check_dataset`.
    """
    report = check_dataset(path, check_media=check_media, progress=progress, **data_checks)
    ds = report.parsed
    if check_media and (identity if identity is not None else not ds.synthetic):
        check_identity(ds, Path(path).parent, report, embedders=embedders, face_weights=face_weights,
                       voice_weights=voice_weights, progress=progress)
        sort_problems(report)
    return report
