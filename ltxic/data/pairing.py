"""Pairing: a folder of a subject's clips and voice recordings becomes a ``dataset.json`` with consent records."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import ValidationError

from ltxic.data.faces import FaceDetector, make_face_detector
from ltxic.data.captions import PLACEHOLDER_CAPTION
from ltxic.data.dataset import (AUDIO_SUFFIXES, VIDEO_SUFFIXES, ConsentError, ConsentRecord, Dataset, DatasetError,
                                 ValidationRules, error_path, is_outside, read_dataset_json)
from ltxic.io.files import StagedFiles, staged_files, write_json_atomic
from ltxic.io.media import MAX_STORED_IMAGE_SIDE, fit_within, sample_frames

log = logging.getLogger(__name__)

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
            fields = "; ".join(f"{error_path([name, *e['loc']])}: {e['msg']}" for e in err.errors())
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
    from ltxic.data.faces import centred_face, mirror_asymmetry, sharpness
    from ltxic.io.media import probe_video

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


def read_caption(txt: Path) -> str:
    """The caption in ``NAME.txt`` beside a clip ('' when there is none); :class:`DatasetError` if it is not UTF-8."""
    if not txt.is_file():
        return ""
    try:
        return txt.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{txt}: caption is not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset "
                           f"{err.start}); re-save it as UTF-8") from err


@runtime_checkable
class FaceMatcher(Protocol):
    """Same person? One face embedding per clip and a score between two (higher: more alike), judged against
    ``threshold``. The identity layer supplies one (:func:`ltxic.identity.agreement.face_matcher`); pairing sits below
    it and only calls these three."""

    name: str
    threshold: float

    def embed(self, frames: np.ndarray) -> np.ndarray | None:
        """One embedding of the main face in uint8 frames (F, H, W, 3) of one clip, or None when no face is found."""
        ...

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        ...


@dataclass
class Agreement:
    """Which of an identity's clips show the same person as most of them. ``chosen``: the clip agreeing with the most
    others (the medoid of the largest same-person group); ``scores``: each clip's score against it."""

    chosen: Path | None
    agreeing: list[Path]
    disagreeing: list[Path]
    no_face: list[Path]
    scores: dict[Path, float]
    matcher: str
    threshold: float

    def to_dict(self, rel: Any) -> dict[str, Any]:
        return {"matcher": self.matcher, "threshold": round(float(self.threshold), 4),
                "chosen": rel(self.chosen) if self.chosen is not None else None,
                "agreeing": [rel(c) for c in self.agreeing],
                "disagreeing": [{"clip": rel(c), "score": round(self.scores[c], 4)} for c in self.disagreeing],
                "no_face": [rel(c) for c in self.no_face]}


def agree_on_clips(clips: Sequence[Path], matcher: FaceMatcher, *, frames_per_clip: int = 3,
                   name: str = "this identity") -> Agreement:
    """Embed one face per clip (``frames_per_clip`` frames spread over it) and keep the clips that show the person most
    clips show: the clip with the most same-person partners (ties: the highest mean score) is the medoid; the clips
    scoring ``matcher.threshold`` or more against it agree, the rest disagree. Sort order never decides: with no
    majority (two clips that disagree, or two groups of equal size) a :class:`DatasetError` names the groups."""
    from ltxic.io.media import probe_video

    embs: dict[Path, np.ndarray] = {}
    no_face: list[Path] = []
    for clip in clips:
        picks = _sample_indices(probe_video(clip).frames, frames_per_clip + 2)[1:-1] or [0]
        frames = sample_frames(clip, picks)
        emb = matcher.embed(np.stack([frames[k] for k in sorted(frames)])) if frames else None
        if emb is None:
            no_face.append(clip)
        else:
            embs[clip] = emb
    found = list(embs)
    if not found:
        return Agreement(None, list(clips), [], no_face, {}, matcher.name, matcher.threshold)
    score = np.array([[matcher.score(embs[a], embs[b]) for b in found] for a in found], np.float64)
    same = score >= matcher.threshold
    support = same.sum(1)
    best = max(range(len(found)), key=lambda i: (support[i], score[i].mean()))
    agreeing = [c for c, ok in zip(found, same[best]) if ok]
    scores = {c: float(score[best, i]) for i, c in enumerate(found)}
    if 2 * len(agreeing) <= len(found) and len(found) > 1:
        groups = "; ".join(f"{c.name} ({'agrees with ' + str(int(support[i]) - 1) + ' other(s)'})" for i, c in enumerate(found))
        raise DatasetError(
            f"the clips of {name} do not agree on one face: no group of clips showing the same person is a majority "
            f"({matcher.name}, same person at {matcher.threshold:.2f} or more; {groups}). Remove the clips of other "
            "people, add more clips of this person, or give the portrait with --reference-image")
    disagreeing = [c for c in found if c not in agreeing]
    return Agreement(found[best], agreeing, disagreeing, no_face, scores, matcher.name, matcher.threshold)


def disagreeing_clips(dataset_json: str | os.PathLike[str]) -> list[tuple[str, str, float, float]]:
    """(identity, clip, score, threshold) of every clip that :func:`pair_folder` found showing another face than the
    rest of its identity's clips (from the ``pairing`` record of a dataset.json it wrote)."""
    data = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    out = []
    for name, how in sorted((data.get("pairing") or {}).items()):
        agreement = (how.get("reference_image") or {}).get("agreement") if isinstance(how, dict) else None
        for d in (agreement or {}).get("disagreeing", []):
            out.append((name, d["clip"], float(d["score"]), float(agreement["threshold"])))
    return out


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
    face_matcher: FaceMatcher | Callable[[bool], FaceMatcher] | None = None,
    progress: bool = True,
    stage: StagedFiles | None = None,
) -> Path:
    """Make (or extend) dataset.json from a folder of clips and a folder of voice recordings.

    Identities come from one sub-folder per identity or from file-name prefixes (``ava_000.mp4``), or all clips
    are ``identity``. ``consent`` (a YAML/JSON file or a mapping, see :func:`load_consent_file`) must hold a record
    for every identity covering ``face`` (and ``voice`` when recordings are paired): otherwise nothing is written.
    Per identity, with a ``face_matcher`` (a :class:`FaceMatcher`, or a function of "are the records synthetic?"
    returning one; ``ltxic pair`` passes the identity embedders') the clips first agree on a face
    (:func:`agree_on_clips`): the reference comes from the clips that show the person most clips show, never from
    sort order alone, and the clips that disagree are named (logged, and listed under ``pairing.<identity>.reference_image.agreement``;
    ``ltxic validate`` then reports them as identity mismatches). Without one every clip counts. The reference
    image is ``reference_image``, the first frame of the first agreeing clip, or the sharpest centred frontal frame
    of the agreeing clips (:func:`pick_reference_frame`), written to ``refs/<identity>.jpg``; the recordings are
    trimmed, cut or joined into ``voice_seconds`` of speech (:func:`ltxic.data.speech.choose_voice_segments`) and
    written to ``refs/<identity>_voice_<k>.wav`` (assigned to clips round-robin). Captions come from ``NAME.txt``
    beside each clip, else :data:`PLACEHOLDER_CAPTION` (validation flags it). ``eval_identities`` are split
    ``eval``; otherwise the last ``eval_fraction`` of each identity's clips. An existing dataset.json at
    ``out_json`` keeps its other identities; ``rules`` (if given) becomes its ``rules`` block. Where each
    reference came from is recorded under the top-level ``pairing`` key. A held portrait larger than
    :data:`~ltxic.io.media.MAX_STORED_IMAGE_SIDE` is stored scaled down to it (recorded there too). When ``out_json``
    sits outside the clips' folder its paths start with ``../`` and it is written with ``allow_outside_paths: true``.

    Nothing is changed unless everything is written: the reference files and dataset.json go to temporary files
    first and are renamed into place together (a full disk leaves the previous dataset as it was). ``stage``: a
    caller's :class:`~ltxic.io.files.StagedFiles` to add them to instead (renamed when the caller's change ends).
    """
    from ltxic.io.media import probe_video, read_audio, read_image, write_audio, write_image
    from ltxic.data.speech import choose_voice_segments

    if stage is None:  # every file of this pairing is written as one change (``stage``: the caller's change)
        with staged_files() as stage:
            return pair_folder(clips_dir, out_json, consent=consent, voice_dir=voice_dir, identity=identity,
                               reference=reference, reference_image=reference_image, eval_identities=eval_identities,
                               eval_fraction=eval_fraction, voice_seconds=voice_seconds, rules=rules,
                               face_detector=face_detector, progress=progress, face_matcher=face_matcher,
                               stage=stage)

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
    matcher = face_matcher
    if matcher is not None and not isinstance(matcher, FaceMatcher):
        try:
            matcher = matcher(all(records[n].synthetic for n in clips))
        except ImportError as err:  # the real embedders are an optional extra
            log.warning("pair: the clips' faces were not compared (%s); the reference comes from every clip", err)
            matcher = None

    if out_json.is_file():  # a dataset.json that cannot be extended is named before any work
        read_dataset_json(out_json)
    for paths in clips.values():  # so is a clip that cannot be read (truncated, a header that lies)
        for clip in paths:
            probe_video(clip)
    root = out_json.parent
    sources = {p.resolve() for ps in voices.values() for p in ps}

    def rel(p: Path) -> str:
        return Path(os.path.relpath(p.resolve(), root.resolve())).as_posix()

    from ltxic.io.progress import progress as tqdm

    # every identity's clips agree (or the pairing is refused) before any file is written
    agreements = {name: agree_on_clips(clips[name], matcher, name=repr(name)) if matcher is not None else None
                  for name in sorted(clips)}
    entries, provenance = [], {}
    for name in tqdm(sorted(clips), desc="pairing", unit="identity", disable=not progress):
        ref = root / "refs" / f"{name}.jpg"
        agreed = agreements[name]
        usable = agreed.agreeing if agreed is not None and agreed.agreeing else clips[name]
        if agreed is not None and agreed.disagreeing:
            log.warning("pair: %d clip(s) of %r show another face than the other %d: %s", len(agreed.disagreeing), name,
                        len(agreed.agreeing), ", ".join(f"{rel(c)} ({agreed.scores[c]:.3f} < {agreed.threshold:.2f})"
                                                         for c in agreed.disagreeing))
        if reference_image is not None:
            img, how = read_image(reference_image), {"source": rel(Path(reference_image)), "how": "held portrait"}
            stored = fit_within(img, MAX_STORED_IMAGE_SIDE)
            if stored.shape != img.shape:
                how["stored"] = (f"scaled from {img.shape[1]}x{img.shape[0]} to {stored.shape[1]}x{stored.shape[0]} "
                                 f"(at most {MAX_STORED_IMAGE_SIDE} px on the long side)")
            img = stored
        elif reference == "first":
            img, how = sample_frames(usable[0], [0])[0], {"source": rel(usable[0]), "frame": 0, "how": "first frame"}
        else:
            img, how = pick_reference_frame(usable, detector)
            how["source"] = rel(Path(how["source"]))
        if agreed is not None:
            how["agreement"] = agreed.to_dict(rel)
        write_image(stage.path(ref), img)
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
                write_audio(stage.path(dest), seg.wave[None], seg.sample_rate)
                voice_rel.append(rel(dest))
            how = {"reference_image": how, "reference_audio": [
                {"path": v, "seconds": round(s.seconds, 2), "from": s.sources} for v, s in zip(voice_rel, segments)]}
        else:
            how = {"reference_image": how}
        provenance[name] = how
        n = len(clips[name])
        n_eval = n if name in eval_identities else int(round(n * eval_fraction))
        for k, clip in enumerate(clips[name]):
            caption = read_caption(clip.with_suffix(".txt"))
            entries.append({
                "identity": name, "video_path": rel(clip), "reference_image": rel(ref),
                "reference_audio": voice_rel[k % len(voice_rel)] if voice_rel else None,
                "caption": caption or PLACEHOLDER_CAPTION,
                "split": "eval" if k >= n - n_eval else "train",
            })
    data: dict[str, Any] = {"version": 1, "identities": {}, "entries": []}
    if out_json.is_file():
        data = read_dataset_json(out_json)
        if not isinstance(data.get("entries", []), list) or not isinstance(data.setdefault("identities", {}), dict):
            raise DatasetError(f"{out_json}: 'entries' must be a list and 'identities' an object; fix the file or "
                               "pair into a new --out")
        data["entries"] = [e for e in data.get("entries", []) if not isinstance(e, dict) or e.get("identity") not in clips]
    if rules is not None:
        rules = rules if isinstance(rules, ValidationRules) else ValidationRules.model_validate(rules)
        data["rules"] = rules.model_dump(mode="json", exclude_unset=True)
    for name in sorted(clips):
        data["identities"][name] = {"consent": records[name].model_dump(mode="json", exclude_none=True)}
    data["entries"].extend(entries)
    data.setdefault("pairing", {}).update(provenance)
    if any(is_outside(e.get(k) or "") for e in entries for k in ("video_path", "reference_image", "reference_audio")):
        data["allow_outside_paths"] = True  # the clips stay where the user keeps them, beside or above out_json
    try:
        Dataset.model_validate(data)  # never write a document load_dataset would reject
    except ValidationError as err:
        problems = "; ".join(f"{error_path(e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()[:5])
        raise DatasetError(f"{out_json}: the existing file cannot be extended ({problems}); fix it or pair into a "
                           "new --out") from err
    write_json_atomic(stage.path(out_json), data)
    return out_json
