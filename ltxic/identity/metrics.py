"""Identity and caption-adherence metrics: face and voice similarity to the reference, lip sync, checkpoint
tables, drift.

Similarity is the cosine of identity embeddings from :mod:`ltxic.identity.embedders`: pretrained face and speaker models on
real footage (dlib's ResNet, Resemblyzer's GE2E; the ``metrics`` extra), the toy world's own embedders on toy
clips, or the user's ArcFace / ECAPA weights. ``embedders`` is a kind (``"auto"``, ``"real"``, ``"toy"``,
``"user"``) or loaded models; ``dataset`` lets ``"auto"`` choose by the dataset's synthetic marker, and every
report names the embedders it used. Lip sync (:mod:`ltxic.identity.lipsync`) correlates the mouth's opening with the speech
envelope. Caption adherence uses the toy world's own scene vocabulary: the room colour seen at the frame border,
and the face's motion (head turn direction, walking across); it is measured on toy clips only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from ltxic.identity.embedders import IdentityModels, mono
from ltxic.identity.select import identity_models
from ltxic.identity.lipsync import LipSync, lip_sync
from ltxic.identity.toy_embedders import equal_error_rate

__all__ = [
    "CheckpointSample", "DriftCurve", "IdentityModels", "LipSync", "background_colour", "caption_adherence",
    "clip_lip_sync", "compare_checkpoints", "drift_curve", "equal_error_rate", "face_similarity", "identity_models",
    "identity_scores", "identity_windows", "lip_sync", "motion_direction", "pick_checkpoint", "plot_checkpoint_comparison",
    "plot_drift", "rewindow", "ValidationScorer", "validation_scorer", "voice_similarity",
]

PathLike = Union[str, os.PathLike]
ImageLike = Union[PathLike, np.ndarray]
AudioLike = Union[PathLike, np.ndarray, torch.Tensor, tuple]
STILL = "still"


Embedders = Union[str, IdentityModels, Any]  # a kind, loaded models, or the toy world's Embedders


def _image(reference_image: ImageLike) -> np.ndarray:
    if isinstance(reference_image, (str, os.PathLike)):
        from ltxic.io.media import read_image

        return read_image(reference_image)
    img = np.asarray(reference_image)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"reference_image: expected a path or uint8 (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _audio(audio: AudioLike, sr: int | None, name: str) -> tuple[torch.Tensor, int]:
    """(waveform (channels, N) float32, sample rate) from a path, a (waveform, sr) tuple or an array plus ``sr``."""
    if isinstance(audio, (str, os.PathLike)):
        from ltxic.io.media import read_audio

        return read_audio(audio)
    if isinstance(audio, tuple):
        audio, sr = audio
    if sr is None:
        raise ValueError(f"{name}: a waveform array needs its sample rate (pass it, or a (waveform, sr) tuple, or a file path)")
    w = torch.as_tensor(np.asarray(audio, np.float32)) if not isinstance(audio, torch.Tensor) else audio.float()
    return (w[None] if w.ndim == 1 else w), int(sr)


def reference_face_embedding(reference_image: ImageLike, embedders: Embedders | None = None, dataset: Any = None) -> np.ndarray:
    """The face embedding of a reference portrait; raises :class:`~ltxic.identity.embedders.NoFaceError` (a ValueError)
    naming the file if no face is found in it."""
    return identity_models(embedders, dataset=dataset).face_reference(_image(reference_image), reference_image)


def face_similarity(frames: np.ndarray, reference_image: ImageLike, embedders: Embedders | None = None,
                    dataset: Any = None) -> np.ndarray:
    """Per-frame same-person score (F,) of the face in each uint8 (F, H, W, 3) frame against the reference's face
    (:meth:`~ltxic.identity.embedders.IdentityModels.face_score`: the cosine, or ``1 - d**2/2`` for dlib's distance).

    NaN where no face was located in the frame (use ``np.isnan`` to count them, ``np.nanmean`` to average).
    """
    e = identity_models(embedders, dataset=dataset)
    ref = reference_face_embedding(reference_image, e)
    emb, _ = e.face_frames(np.asarray(frames))
    return e.face_score(emb, ref)


def reference_voice_embedding(reference_audio: AudioLike, ref_sr: int | None = None, embedders: Embedders | None = None,
                              dataset: Any = None) -> np.ndarray:
    """The voice embedding of a reference recording; raises (naming the file) when it is silent or its sample
    rate is too low for the voice model."""
    ref_wave, ref_rate = _audio(reference_audio, ref_sr, "reference_audio")
    source = reference_audio if isinstance(reference_audio, (str, os.PathLike)) else None
    return identity_models(embedders, dataset=dataset).voice_reference(ref_wave, ref_rate, source=source)


def voice_similarity(
    waveform: np.ndarray | torch.Tensor, sr: int, reference_audio: AudioLike, ref_sr: int | None = None,
    embedders: Embedders | None = None, window_s: float | None = None, hop_s: float | None = None,
    dataset: Any = None,
) -> np.ndarray:
    """Cosine similarity to the reference voice of each ``window_s`` window (hop ``hop_s``) of ``waveform``.

    ``reference_audio`` is a path, a (waveform, sr) tuple or an array with ``ref_sr``. NaN for windows without
    speech (silence has no voice to compare). The window defaults to the voice model's own span (1 s toy,
    1.6 s GE2E), the hop to half of it.
    """
    e = identity_models(embedders, dataset=dataset)
    ref = reference_voice_embedding(reference_audio, ref_sr, e)
    emb, _, _ = e.voice_windows(waveform, sr, window_s, hop_s)
    return emb @ ref


@dataclass
class _Video:
    frames: np.ndarray
    audio: torch.Tensor | None
    sample_rate: int | None
    fps: float | None


def _video(video: Any) -> _Video:
    """A path to an mp4, a ToyClip-like object (frames, audio, sample_rate, fps), a (frames, audio, sr) tuple or frames."""
    if isinstance(video, _Video):
        return video
    if isinstance(video, (str, os.PathLike)):
        from ltxic.io.media import probe_video, read_video, read_video_audio

        info = probe_video(video)
        audio = read_video_audio(video, 16000) if info.has_audio else None
        return _Video(read_video(video), audio, 16000 if audio is not None else None, float(info.fps))
    if hasattr(video, "frames") and (hasattr(video, "audio") or hasattr(video, "waveform")):
        audio = video.audio if hasattr(video, "audio") else video.waveform
        audio = None if audio is None else torch.as_tensor(np.asarray(audio, np.float32))
        return _Video(np.asarray(video.frames), audio, int(video.sample_rate) if audio is not None else None,
                      float(getattr(video, "fps", 0) or 0) or None)
    if isinstance(video, tuple):
        frames, audio, sr, *rest = video
        return _Video(np.asarray(frames), None if audio is None else torch.as_tensor(np.asarray(audio, np.float32)), sr,
                      float(rest[0]) if rest and rest[0] else None)
    return _Video(np.asarray(video), None, None, None)


def _stride(e: IdentityModels, fps: float | None, frame_stride: int | None) -> int:
    """Frames between face embeddings: every frame for the toy embedders (cheap), about 4 a second otherwise
    (a pretrained face model on a CPU takes ~0.1 s a face); an explicit ``frame_stride`` wins."""
    if frame_stride is not None:
        return max(1, int(frame_stride))
    return 1 if e.kind == "toy" or not fps else max(1, int(round(fps / 4)))


def _face_track(e: IdentityModels, v: _Video, reference_image: ImageLike,
                frame_stride: int | None) -> tuple[np.ndarray, np.ndarray, list, int]:
    """Per-frame face similarity to the reference (NaN where no face was found or the frame was not sampled), the
    found mask, every frame's face box (for the mouth) and the stride used (:func:`_stride`)."""
    stride = _stride(e, v.fps, frame_stride)
    ref = reference_face_embedding(reference_image, e)
    emb, found, boxes = e.face_track(v.frames, stride)
    return e.face_score(emb, ref), found, boxes, stride


def clip_lip_sync(video: Any, embedders: Embedders | None = None, dataset: Any = None, *, max_offset_ms: float = 500.0,
                  boxes: Any = None) -> LipSync:
    """Lip sync of a clip with its own audio (:func:`ltxic.identity.lipsync.lip_sync`): mouth opening from the embedders'
    face locator, speech envelope from the audio. ``video`` as in :func:`identity_scores`, with its frame rate
    (an mp4, a clip object, or a (frames, audio, sample_rate, fps) tuple)."""
    e = identity_models(embedders, dataset=dataset)
    v = _video(video)
    where = video if isinstance(video, (str, os.PathLike)) else None
    if v.audio is None or v.sample_rate is None:
        raise ValueError(f"{where or 'the clip'}: no audio track, so there is no speech to sync the mouth with")
    if not v.fps:
        raise ValueError(f"{where or 'the clip'}: the frame rate is unknown; pass (frames, audio, sample_rate, fps)")
    aperture = e.mouth_aperture(v.frames, boxes)
    return lip_sync(aperture, mono(v.audio, v.sample_rate, v.sample_rate), int(v.sample_rate), float(v.fps),
                    max_offset_ms=max_offset_ms, source=where)


def identity_scores(
    video: Any, reference_image: ImageLike, reference_audio: AudioLike | None = None, ref_sr: int | None = None,
    embedders: Embedders | None = None, dataset: Any = None, sync: bool = True, frame_stride: int | None = None,
) -> dict:
    """Mean face and voice similarity of a clip to the reference, the fraction of frames with a located face,
    and the lip sync of the clip's own audio (offset in ms and correlation, see :func:`clip_lip_sync`).

    ``video``: an mp4 path, a :class:`~ltxic.toy.ToyClip` or generation, a (frames, audio, sample_rate[, fps])
    tuple or frames only. Voice keys are None when the clip or the reference has no audio, lip sync keys when the
    clip has no audio or frame rate (``lip_sync_note`` says why when it could not be measured). ``embedders``
    names the embedders used. ``frame_stride`` > 1 embeds every n-th frame only (see
    :meth:`~ltxic.identity.embedders.IdentityModels.face_track`; default: every frame for toy embedders, about 4 a second
    for the others); lip sync still reads every frame's mouth.
    """
    e = identity_models(embedders, dataset=dataset)
    v = _video(video)
    face, found, boxes, frame_stride = _face_track(e, v, reference_image, frame_stride)
    found = found[::frame_stride]
    out: dict[str, Any] = {
        "face_similarity": float(np.nanmean(face)) if found.any() else float("nan"),
        "face_found": float(found.mean()),
        "frames": int(len(face)),
        "voice_similarity": None,
        "voiced_windows": None,
        "lip_sync_offset_ms": None,
        "lip_sync_correlation": None,
        "embedders": e.label(),
    }
    if v.audio is not None and reference_audio is not None:
        voice = voice_similarity(v.audio, v.sample_rate, reference_audio, ref_sr, e)
        voiced = ~np.isnan(voice)
        out["voice_similarity"] = float(np.nanmean(voice)) if voiced.any() else float("nan")
        out["voiced_windows"] = float(voiced.mean())
    if sync and v.audio is not None and v.fps:
        try:
            ls = clip_lip_sync(v, e, boxes=boxes)
            out["lip_sync_offset_ms"], out["lip_sync_correlation"] = ls.offset_ms, ls.correlation
        except ValueError as err:  # silent audio, or too few frames with a mouth: not a score
            out["lip_sync_note"] = str(err)
    return out


# ----------------------------------------------------------------------------------------------- scene checks
def background_colour(frames: np.ndarray) -> tuple[str, str]:
    """(room colour, light) of toy frames, read from the frame border: the nearest lit colour of the vocabulary.

    The border is the top rows and the upper parts of the side columns (the floor and the shirt sit lower);
    the median over them ignores a head that crosses the border now and then.
    """
    from ltxic.toy.render import LIGHT_GAIN
    from ltxic.toy.scene import BACKGROUNDS

    f = np.asarray(frames, np.float32)
    if f.ndim == 3:
        f = f[None]
    h, w = f.shape[1:3]
    b = max(2, h // 32)
    border = np.concatenate([
        f[:, :b].reshape(-1, 3), f[:, : int(0.6 * h), :b].reshape(-1, 3), f[:, : int(0.6 * h), -b:].reshape(-1, 3),
    ])
    colour = np.median(border, 0)
    best = min(
        ((name, light) for name in BACKGROUNDS for light in LIGHT_GAIN),
        key=lambda nl: float(np.linalg.norm(colour - np.asarray(BACKGROUNDS[nl[0]]) * LIGHT_GAIN[nl[1]])),
    )
    return best


def _person_centre(frame: np.ndarray) -> float:
    """Horizontal centre of the person (pixels unlike the room's border colour), in frame widths; NaN if none."""
    f = np.asarray(frame, np.float32)
    h, w = f.shape[:2]
    b = max(2, h // 32)
    room = np.median(np.concatenate([f[:b].reshape(-1, 3), f[: int(0.6 * h), :b].reshape(-1, 3),
                                     f[: int(0.6 * h), -b:].reshape(-1, 3)]), 0)
    top = f[: int(0.75 * h)]  # above the floor
    fg = np.linalg.norm(top - room, axis=-1) > 0.2 * np.linalg.norm(room) + 15
    if fg.sum() < 0.005 * h * w:
        return float("nan")
    return float((np.nonzero(fg)[1].mean() + 0.5) / w)


def _feature_offset(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Horizontal offset of the face's features (eyes, brows, nose, mouth) from the face centre, in face widths."""
    x0, y0, x1, y1 = box
    face = np.asarray(frame[y0:y1, x0:x1], np.float32)
    hh, ww = face.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    inner = (((xx + 0.5 - ww / 2) / (0.45 * ww)) ** 2 + ((yy + 0.5 - hh / 2) / (0.45 * hh)) ** 2) <= 1
    if inner.sum() < 10:
        return float("nan")
    skin = np.median(face[inner], 0)
    # a tight tolerance keeps the nose (skin shaded 18% darker): it moves most with the turn
    feat = inner & (np.linalg.norm(face - skin, axis=-1) > 0.06 * np.linalg.norm(skin) + 6)
    if feat.sum() < 3:
        return float("nan")
    return float((xx[feat].mean() + 0.5 - ww / 2) / ww)


def motion_direction(frames: np.ndarray, turn_threshold: float = 0.06, walk_threshold: float = 0.15) -> str:
    """The face's motion in toy frames: "turns head left", "turns head right", "walks across" (left to right),
    "walks right to left", "still", or "unknown" (a face found in fewer than half the frames).

    Walking moves the person (pixels unlike the room) across the frame; a head turn moves the features inside the face (negative =
    towards image left, the toy world's "left"). Each is the change from the first to the last quarter. Faces are found by the
    shipped learned locator (decoded frames too), or by the rule-based one where it is absent.
    """
    from ltxic.identity.toy_face_locator import load_face_locator
    from ltxic.toy.locate import locate_faces

    frames = np.asarray(frames)
    n, _, w = frames.shape[:3]
    centres = np.array([_person_centre(f) for f in frames])
    q = max(1, n // 4)

    def change(x: np.ndarray) -> float:
        a, b = x[:q][~np.isnan(x[:q])], x[-q:][~np.isnan(x[-q:])]
        return float(b.mean() - a.mean()) if len(a) and len(b) else 0.0

    walk = change(centres)
    if abs(walk) > walk_threshold:
        return "walks across" if walk > 0 else "walks right to left"
    boxes = locate_faces(frames, load_face_locator())
    offsets = np.full(n, np.nan)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        if box is not None:
            offsets[i] = _feature_offset(frame, box)
    if np.isnan(offsets).mean() > 0.5:
        return "unknown"
    turn = change(offsets)
    if abs(turn) > turn_threshold:
        return "turns head right" if turn > 0 else "turns head left"
    return STILL


def expected_motion(action: str) -> str:
    """What :func:`motion_direction` should see for a toy action (speaking and nodding move no face sideways)."""
    return action if action in ("turns head left", "turns head right", "walks across") else STILL


def caption_adherence(frames: np.ndarray, caption: str) -> dict:
    """Background colour and motion of toy frames checked against the caption's toy scene.

    Keys: ``background``/``motion`` (what was seen), ``background_match``/``motion_match`` (bool, or None when
    the caption is outside the toy vocabulary and no ground truth exists).
    """
    from ltxic.toy.scene import Scene

    seen_bg, seen_light = background_colour(frames)
    seen_motion = motion_direction(frames)
    out: dict[str, Any] = {"background": seen_bg, "light": seen_light, "motion": seen_motion,
                           "background_match": None, "motion_match": None}
    try:
        scene = Scene.from_caption(caption)
    except ValueError:
        return out
    out["background_match"] = seen_bg == scene.background
    out["motion_match"] = seen_motion == expected_motion(scene.action)
    return out


# ----------------------------------------------------------------------------------------------- checkpoints
@dataclass
class CheckpointSample:
    """One generated clip of a checkpoint and what it should show: a video (see :func:`identity_scores`),
    its reference image and audio, and the caption it was generated from."""

    video: Any
    reference_image: ImageLike
    reference_audio: AudioLike | None = None
    caption: str | None = None
    ref_sr: int | None = None


def _nanmean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.mean(vals)) if vals else None


def compare_checkpoints(
    samples_by_checkpoint: Mapping[int, Sequence[CheckpointSample | Mapping]], embedders: Embedders | None = None,
    dataset: Any = None,
) -> list[dict]:
    """One row per checkpoint step (ascending): mean face and voice similarity, fraction of frames with a face,
    mean lip-sync offset (ms) and correlation, the embedders used, and, for toy clips whose captions are in the
    toy vocabulary, the fraction of samples whose background colour and motion match the caption (None where no
    caption gives ground truth, and on real footage)."""
    e = identity_models(embedders, dataset=dataset)
    rows = []
    for step in sorted(samples_by_checkpoint):
        scores, bg, motion = [], [], []
        for s in samples_by_checkpoint[step]:
            s = s if isinstance(s, CheckpointSample) else CheckpointSample(**s)
            video = _video(s.video)  # decode a file once for both checks
            scores.append(identity_scores(video, s.reference_image, s.reference_audio, s.ref_sr, e))
            if s.caption and e.kind == "toy":
                adh = caption_adherence(video.frames, s.caption)
                bg.append(adh["background_match"])
                motion.append(adh["motion_match"])
        rows.append({
            "step": int(step),
            "face_similarity": _nanmean([sc["face_similarity"] for sc in scores]),
            "voice_similarity": _nanmean([sc["voice_similarity"] for sc in scores]),
            "face_found": _nanmean([sc["face_found"] for sc in scores]),
            "lip_sync_offset_ms": _nanmean([sc["lip_sync_offset_ms"] for sc in scores]),
            "lip_sync_correlation": _nanmean([sc["lip_sync_correlation"] for sc in scores]),
            "background_match": _nanmean(bg),
            "motion_match": _nanmean(motion),
            "samples": len(scores),
            "embedders": e.label(),
        })
    return rows


# ----------------------------------------------------------------------------------------------- drift
@dataclass
class DriftCurve:
    """Identity over time: window centres (s), mean face similarity per window (NaN: no face in it), the
    per-frame face similarities and the window length; from :func:`identity_windows` also the voice similarity
    and lip sync (offset in ms, correlation) per window (NaN where a window has no speech or too little mouth).
    ``embedders`` names the embedders used."""

    times: np.ndarray
    similarity: np.ndarray
    per_frame: np.ndarray
    window_s: float
    voice: np.ndarray | None = None
    lip_sync_offset_ms: np.ndarray | None = None
    lip_sync_correlation: np.ndarray | None = None
    embedders: str | None = None
    lip_sync: LipSync | None = None  # the whole clip's (identity_windows)
    lip_sync_note: str | None = None  # why the whole clip's lip sync could not be measured

    def rows(self) -> list[dict[str, Any]]:
        """One dict per window (time, face, and voice / lip sync when measured), NaN as None: a table."""
        def val(a: np.ndarray | None, i: int) -> float | None:
            return None if a is None or not np.isfinite(a[i]) else round(float(a[i]), 4)

        return [{"time_s": round(float(t), 3), "face_similarity": val(self.similarity, i),
                 **({"voice_similarity": val(self.voice, i)} if self.voice is not None else {}),
                 **({"lip_sync_offset_ms": val(self.lip_sync_offset_ms, i),
                     "lip_sync_correlation": val(self.lip_sync_correlation, i)} if self.lip_sync_offset_ms is not None else {})}
                for i, t in enumerate(self.times)]


def _windows(n: int, window_s: float, fps: float) -> tuple[np.ndarray, int]:
    if window_s <= 0 or fps <= 0:
        raise ValueError(f"drift_curve: window_s ({window_s}) and fps ({fps}) must be positive")
    win = max(1, int(round(window_s * fps)))
    return np.arange(0, max(n - win, 0) + 1, max(1, win // 2)), win


def _window_means(per_frame: np.ndarray, starts: np.ndarray, win: int) -> np.ndarray:
    sims = []
    for s in starts:
        chunk = per_frame[s : s + win]
        sims.append(np.nanmean(chunk) if (~np.isnan(chunk)).any() else np.nan)
    return np.asarray(sims, np.float32)


def drift_curve(
    frames: np.ndarray, reference_image: ImageLike, window_s: float = 1.0, fps: float = 24.0,
    embedders: Embedders | None = None, dataset: Any = None,
) -> DriftCurve:
    """Mean face similarity to the reference in windows of ``window_s`` seconds, hop half a window."""
    e = identity_models(embedders, dataset=dataset)
    starts, win = _windows(len(frames), window_s, fps)
    per_frame = face_similarity(frames, reference_image, e)
    n = len(per_frame)
    times = (starts + min(win, n) / 2) / fps
    return DriftCurve(times.astype(np.float32), _window_means(per_frame, starts, win), per_frame, float(window_s),
                      embedders=e.label())


def rewindow(curve: DriftCurve, window_s: float, fps: float) -> DriftCurve:
    """``curve``'s face similarity again in windows of ``window_s`` seconds (hop half a window), from its per-frame
    scores: no embedder runs again. Voice and lip sync were measured per window of the old length, so they are not
    carried over."""
    starts, win = _windows(len(curve.per_frame), window_s, fps)
    times = (starts + min(win, len(curve.per_frame)) / 2) / fps
    return DriftCurve(times.astype(np.float32), _window_means(curve.per_frame, starts, win), curve.per_frame,
                      float(window_s), embedders=curve.embedders)


def identity_windows(
    video: Any, reference_image: ImageLike, reference_audio: AudioLike | None = None, ref_sr: int | None = None,
    window_s: float = 1.0, embedders: Embedders | None = None, dataset: Any = None, frame_stride: int | None = None,
) -> DriftCurve:
    """Face similarity, voice similarity and lip sync per window of ``window_s`` seconds (hop half a window) of a
    clip with its audio (an mp4, a clip or generation object, or a (frames, audio, sample_rate, fps) tuple).

    The voice of each window is embedded as one span (the reference once, whole); lip sync searches offsets up to
    a quarter of the window (at most 500 ms). ``frame_stride`` as in :func:`identity_scores`."""
    e = identity_models(embedders, dataset=dataset)
    v = _video(video)
    fps = v.fps or 24.0
    starts, win = _windows(len(v.frames), window_s, fps)
    per_frame, _, boxes, _ = _face_track(e, v, reference_image, frame_stride)
    n = len(per_frame)
    times = (starts + min(win, n) / 2) / fps
    curve = DriftCurve(times.astype(np.float32), _window_means(per_frame, starts, win), per_frame, float(window_s),
                       embedders=e.label())
    if v.audio is None or v.sample_rate is None:
        return curve
    wave, sr = mono(v.audio, v.sample_rate, v.sample_rate), int(v.sample_rate)
    if reference_audio is not None:
        ref_voice = reference_voice_embedding(reference_audio, ref_sr, e)
        voice = []
        for s in starts:
            seg = wave[int(round(s / fps * sr)): int(round((s + win) / fps * sr))]
            w_emb, _, voiced = e.voice_windows(seg, sr, window_s=max(len(seg), 1) / sr, hop_s=max(len(seg), 1) / sr)
            voice.append(float(w_emb[0] @ ref_voice) if len(voiced) and voiced[0] else np.nan)
        curve.voice = np.asarray(voice, np.float32)
    aperture = e.mouth_aperture(v.frames, boxes)
    where = video if isinstance(video, (str, os.PathLike)) else None
    try:
        curve.lip_sync = lip_sync(aperture, wave, sr, fps, source=where)
    except ValueError as err:
        curve.lip_sync_note = str(err)
    offsets, corrs = [], []
    for s in starts:
        try:
            ls = lip_sync(aperture[s : s + win], wave, sr, fps, max_offset_ms=min(500.0, 250.0 * win / fps), t0_s=s / fps)
            offsets.append(ls.offset_ms)
            corrs.append(ls.correlation)
        except ValueError:
            offsets.append(np.nan)
            corrs.append(np.nan)
    curve.lip_sync_offset_ms = np.asarray(offsets, np.float32)
    curve.lip_sync_correlation = np.asarray(corrs, np.float32)
    return curve


# ----------------------------------------------------------------------------------------------- plots
def _lower(values: Sequence[float]) -> float:
    """Lower y limit: -0.1, or below the lowest value when a similarity is negative."""
    finite = [v for v in values if np.isfinite(v)]
    return min([-0.1] + [v - 0.05 for v in finite])


def plot_checkpoint_comparison(rows: Sequence[Mapping]):
    """Identity similarity (face, voice) and caption adherence against checkpoint step; a matplotlib Figure."""
    from ltxic.io.figures import new_figure

    steps = [r["step"] for r in rows]

    def series(key: str) -> list[float]:
        return [np.nan if r.get(key) is None else r[key] for r in rows]

    fig = new_figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(steps, series("face_similarity"), "o-", label="face")
    ax1.plot(steps, series("voice_similarity"), "s-", label="voice")
    ax1.set(xlabel="checkpoint step", ylabel="cosine similarity to reference", title="Identity",
            ylim=(_lower(series("face_similarity") + series("voice_similarity")), 1.05))
    ax1.legend()
    ax2.plot(steps, series("background_match"), "o-", label="background colour")
    ax2.plot(steps, series("motion_match"), "s-", label="motion")
    ax2.plot(steps, series("face_found"), "^--", label="face found", alpha=0.6)
    ax2.set(xlabel="checkpoint step", ylabel="fraction of samples", title="Caption adherence", ylim=(-0.05, 1.05))
    ax2.legend()
    return fig


def plot_drift(curves: DriftCurve | Mapping[str, DriftCurve], threshold: float | None = None):
    """Face similarity over time for one or several clips (a mapping label -> curve); a matplotlib Figure."""
    from ltxic.io.figures import new_figure

    if isinstance(curves, DriftCurve):
        curves = {"clip": curves}
    fig = new_figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    for label, c in curves.items():
        ax.plot(c.times, c.similarity, "o-", label=label)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    window = next(iter(curves.values())).window_s if curves else 1.0
    lows = [float(v) for c in curves.values() for v in c.similarity]
    ax.set(xlabel="time (s)", ylabel=f"face similarity ({window:g} s windows)", title="Identity drift", ylim=(_lower(lows), 1.05))
    ax.legend()
    return fig


# ----------------------------------------------------------------------------------------------- picking a step
def _mean_of(row: Mapping, keys: Sequence[str]) -> float | None:
    vals = [float(row[k]) for k in keys if row.get(k) is not None and np.isfinite(float(row[k]))]
    return float(np.mean(vals)) if vals else None


def pick_checkpoint(rows: Sequence[Mapping], tolerance: float = 0.05) -> dict:
    """The step to keep from :func:`compare_checkpoints` rows: the earliest checkpoint whose identity (mean of face
    and voice similarity) is within ``tolerance`` of the best one's and whose caption adherence (mean of background
    and motion match) is within ``tolerance`` of the best adherence; when no checkpoint has both, the one of the
    near-best identity with the best adherence. Returns ``{"step", "identity", "adherence", "why"}``."""
    scored = [(r["step"], _mean_of(r, ("face_similarity", "voice_similarity")), _mean_of(r, ("background_match", "motion_match")))
              for r in rows]
    scored = [s for s in scored if s[1] is not None]
    if not scored:
        raise ValueError("pick_checkpoint: no checkpoint has a face or voice similarity (no face found in any sample?)")
    best_id = max(s[1] for s in scored)
    near = sorted((s for s in scored if s[1] >= best_id - tolerance), key=lambda s: s[0])
    adh = [s[2] for s in scored if s[2] is not None]
    best_adh = max(adh) if adh else None
    keep = [s for s in near if best_adh is None or (s[2] is not None and s[2] >= best_adh - tolerance)]
    if keep:
        step, ident, adherence = keep[0]
        why = (f"the earliest step within {tolerance:g} of the best identity ({best_id:.2f})"
               + ("" if best_adh is None else f" and of the best caption adherence ({best_adh:.2f})"))
    else:
        step, ident, adherence = max(near, key=lambda s: (s[2] if s[2] is not None else -1.0, -s[0]))
        why = f"near the best identity ({best_id:.2f}), the best caption adherence among those; later steps trade the caption for identity"
    return {"step": int(step), "identity": ident, "adherence": adherence, "why": why}


# ------------------------------------------------------------------------------ validation clips in training


class ValidationScorer:
    """Identity scores of validation clips against the validation references (see :func:`validation_scorer`)."""

    def __init__(self, cfg: Any, models: Any, note: str | None) -> None:
        self.cfg, self.models, self.note = cfg, models, note

    def score(self, name: str, prompt: str, frames: Any, wave: Any, sr: int, fps: float) -> dict[str, Any]:
        row: dict[str, Any] = {"clip": name, "prompt": prompt}
        val = self.cfg.validation
        if self.models is None:  # no reference image, or no embedders installed: the report's note says which
            return row
        try:
            row.update(identity_scores((frames, wave, sr, fps), val.reference_image, val.reference_audio,
                                       embedders=self.models))
        except ValueError as err:  # e.g. no face in the reference: say so in the report, keep training
            row["error"] = str(err)
        return row

    def report(self, step: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        def mean(key: str) -> float | None:
            vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
            return round(sum(vals) / len(vals), 4) if vals else None

        return {"step": step, "embedders": self.models.describe() if self.models is not None else None,
                **({"note": self.note} if self.note else {}),
                "mean": {k: mean(k) for k in ("face_similarity", "voice_similarity", "face_found",
                                              "lip_sync_offset_ms", "lip_sync_correlation")},
                "clips": rows}


def validation_scorer(cfg: Any) -> ValidationScorer:
    """The scorer of a training config's validation clips, its embedders (``validation.embedders``) loaded before
    training. Without the ``metrics`` extra an ``auto`` choice of the real embedders skips scoring with a note
    (training does not need it); an explicit kind fails here, before any step."""
    from ltxic.identity.embedders import MissingExtraError

    val = cfg.validation
    if val.reference_image is None:
        return ValidationScorer(cfg, None, "no validation.reference_image: clips are not scored")
    try:
        models = identity_models(val.embedders, dataset=cfg.dataset.dataset_file, face_weights=val.face_weights,
                                 voice_weights=val.voice_weights)
    except MissingExtraError as err:
        if val.embedders != "auto":
            raise
        print(f"validation clips will not be scored: {err}", file=sys.stderr)
        return ValidationScorer(cfg, None, f"not scored: {err}")
    return ValidationScorer(cfg, models, None)
