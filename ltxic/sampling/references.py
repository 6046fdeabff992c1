"""Reference image and voice clip, checked and brought to what the model takes, with consent first.

Every function here says what it changed: the prepared reference carries ``notes`` (one sentence each,
naming the file and both sizes / durations / rates), and each note is also logged as a warning. What
cannot be fixed is refused with :class:`ReferenceMediaError`, naming the file, what is wrong and the fix.

Rules (the course's guidance for identity references, DESIGN.md "Pairing"):

* Image: any size; it is scaled to cover the target (reference) resolution and center-cropped, the same
  transform the training cache applies to reference portraits (bilinear, antialiased), so inference sees
  the pixels training saw.
* Voice: 5-15 s of clean speech is recommended. Shorter than 2 s is refused; longer than 15 s keeps the
  first 15 s from where speech starts; digital silence or an RMS level below -50 dBFS is refused; another
  sample rate is resampled (``ltxic.io.media.resample``, torchaudio); several channels are averaged to mono.
* Consent: a reference is used only with a :class:`ltxic.data.dataset.ConsentRecord` whose ``media`` covers it
  (``face`` for the image, ``voice`` for the clip), given directly or looked up in a dataset.json's
  ``identities.<name>.consent``; otherwise :class:`ltxic.data.dataset.ConsentError`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltxic.data.dataset import ConsentError, ConsentRecord, Dataset, load_dataset
from ltxic.io.media import MediaError, read_audio, read_image, resample, resize_cover_crop

log = logging.getLogger(__name__)

MIN_VOICE_SECONDS = 2.0
MAX_VOICE_SECONDS = 15.0
RECOMMENDED_VOICE_SECONDS = (5.0, 15.0)
SILENCE_DBFS = -50.0

PathLike = str | os.PathLike[str]


class ReferenceMediaError(MediaError):
    """A reference file cannot be used as it is; the message names the file, the problem and the fix."""


@dataclass
class PreparedImage:
    """``pixels`` ``(1, 3, 1, H, W)`` in [-1, 1] (one video frame), ready for ``VideoCodec.encode``."""

    pixels: torch.Tensor
    source: Path
    original_size: tuple[int, int]  # (width, height)
    notes: list[str] = field(default_factory=list)

    def as_uint8(self) -> np.ndarray:
        """The prepared image as uint8 ``(H, W, 3)`` (for previews)."""
        img = ((self.pixels[0, :, 0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
        return img.to(torch.uint8).cpu().numpy()


@dataclass
class PreparedAudio:
    """``waveform`` ``(1, 1, N)`` mono at ``sample_rate``, ready for ``AudioCodec.encode``."""

    waveform: torch.Tensor
    sample_rate: int
    source: Path
    original_seconds: float
    original_sample_rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    log.warning(text)


# ----------------------------------------------------------------------------------------------- consent


def consent_for(dataset: Dataset | PathLike, identity: str) -> ConsentRecord:
    """The consent record of ``identity`` in a dataset (a loaded :class:`Dataset` or a dataset.json path)."""
    source = "the dataset"
    if not isinstance(dataset, Dataset):
        source = str(dataset)
        dataset = load_dataset(dataset)
    record = dataset.identities.get(identity)
    if record is None or record.consent is None:
        known = sorted(dataset.identities)
        raise ConsentError(
            f"{source}: identity {identity!r} has no consent record (identities.{identity}.consent); "
            f"add one with subject, granted_by, media, date and scope before using its face or voice "
            f"(identities in this file: {known})"
        )
    return record.consent


def require_consent(consent: ConsentRecord | dict[str, Any] | None, medium: str, file: PathLike, identity: str | None = None) -> ConsentRecord:
    """Return the validated record if it covers ``medium`` (``face`` or ``voice``), else raise ``ConsentError``."""
    who = repr(identity) if identity else "the person in it"
    where = f"identities.{identity}.consent" if identity else "identities.<name>.consent"
    if consent is None:
        raise ConsentError(
            f"{file}: no consent record for {who}; reference media are used only with consent. Pass "
            f"consent=ConsentRecord(subject=..., granted_by=..., media=['face', 'voice'], date=..., scope=...) "
            f"or the dataset.json that holds it ({where}); on the command line, --dataset FILE --identity NAME."
        )
    if not isinstance(consent, ConsentRecord):
        consent = ConsentRecord.model_validate(consent)
    if medium not in consent.media:
        raise ConsentError(
            f"{file}: the consent record of {who} ({consent.subject}) covers {sorted(consent.media)}, not "
            f"{medium!r}; add {medium!r} to {where}.media only if {consent.granted_by} agreed to it."
        )
    return consent


# ----------------------------------------------------------------------------------------------- image




DETECT_MAX_SIDE = 640  # faces are looked for on the portrait scaled to at most this size (Haar time grows with pixels)


def require_face(img: np.ndarray, path: PathLike, detector: Any) -> None:
    """:class:`ReferenceMediaError` when ``detector`` (:class:`ltxic.data.faces.FaceDetector`) finds no face in a
    reference portrait: the model would be conditioned on something that is not a person (``ltxic validate``
    refuses such a reference in a dataset too)."""
    import cv2

    h, w = img.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = img if scale == 1.0 else cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    if not detector.detect(np.ascontiguousarray(small)):
        raise ReferenceMediaError(
            f"{path}: no face was found in the reference image (by the {detector.name} face detector, on the image "
            f"{'scaled to ' + str(small.shape[1]) + 'x' + str(small.shape[0]) if scale < 1 else 'at its size'}); use a "
            "frontal, evenly lit portrait of the person with the face at least 80 pixels tall")


def prepare_reference_image(
    path: PathLike,
    width: int,
    height: int,
    *,
    consent: ConsentRecord | dict[str, Any] | None,
    identity: str | None = None,
    face_detector: Any = "auto",
) -> PreparedImage:
    """Read a reference portrait, refuse it when no face is in it (``face_detector``: ``"auto"``, the toy locator
    for a synthetic consent record and OpenCV's Haar cascade otherwise, a :class:`ltxic.data.faces.FaceDetector`, or
    None to skip), and bring it to ``width x height`` (the reference resolution)."""
    from ltxic.data.faces import make_face_detector

    path = Path(path)
    record = require_consent(consent, "face", path, identity)
    img = read_image(path)
    if face_detector is not None:
        kind = ("toy" if record.synthetic else "haar") if face_detector == "auto" else face_detector
        require_face(img, path, make_face_detector(kind))
    h, w = img.shape[:2]
    notes: list[str] = []
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    if (w, h) != (width, height):
        how = "resized" if w * height == h * width else "resized and center-cropped"
        _note(notes, f"{path}: reference image is {w}x{h}, {how} to the reference resolution {width}x{height}")
        x = resize_cover_crop(x, width, height)
    pixels = (x / 127.5 - 1.0).clamp(-1, 1).permute(1, 0, 2, 3).unsqueeze(0)
    return PreparedImage(pixels=pixels.contiguous(), source=path, original_size=(w, h), notes=notes)


# ----------------------------------------------------------------------------------------------- audio


def dbfs(waveform: torch.Tensor) -> float:
    """RMS level in dB relative to full scale (``-inf`` for digital silence)."""
    rms = float(waveform.double().pow(2).mean().sqrt())
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _speech_start(mono: torch.Tensor, sample_rate: int, threshold_dbfs: float) -> int:
    """First sample of the first 20 ms window louder than ``threshold_dbfs``."""
    win = max(1, sample_rate // 50)
    n = mono.shape[-1] // win
    if n == 0:
        return 0
    frames = mono[: n * win].reshape(n, win).double()
    level = 10 * torch.log10(frames.pow(2).mean(1).clamp_min(1e-20))
    loud = torch.nonzero(level > threshold_dbfs)
    return int(loud[0, 0]) * win if len(loud) else 0


def prepare_reference_audio(
    path: PathLike,
    sample_rate: int,
    *,
    consent: ConsentRecord | dict[str, Any] | None,
    identity: str | None = None,
    min_seconds: float = MIN_VOICE_SECONDS,
    max_seconds: float = MAX_VOICE_SECONDS,
    silence_dbfs: float = SILENCE_DBFS,
) -> PreparedAudio:
    """Read a reference voice clip and bring it to mono at ``sample_rate``, at most ``max_seconds`` long."""
    path = Path(path)
    require_consent(consent, "voice", path, identity)
    wav, sr = read_audio(path)
    notes: list[str] = []
    seconds = wav.shape[-1] / sr
    if wav.shape[0] > 1:
        _note(notes, f"{path}: {wav.shape[0]} audio channels averaged to mono")
        wav = wav.mean(0, keepdim=True)
    mono = wav[0]
    level = dbfs(mono)
    lo, hi = RECOMMENDED_VOICE_SECONDS
    if level == -math.inf:
        raise ReferenceMediaError(
            f"{path}: the reference voice clip is digital silence (every sample is 0). "
            f"Record or pick {lo:g}-{hi:g} s of clean speech by the same person."
        )
    if level < silence_dbfs:
        raise ReferenceMediaError(
            f"{path}: the reference voice clip is near-silent (RMS {level:.1f} dBFS, below {silence_dbfs:g} dBFS). "
            f"Use a clip with audible speech ({lo:g}-{hi:g} s), or normalize its level first."
        )
    if seconds < min_seconds:
        raise ReferenceMediaError(
            f"{path}: the reference voice clip lasts {seconds:.2f} s, shorter than {min_seconds:g} s; "
            f"voice identity needs {lo:g}-{hi:g} s of clean speech: use a longer recording."
        )
    if seconds > max_seconds:
        start = _speech_start(mono, sr, silence_dbfs)
        end = min(mono.shape[-1], start + int(round(max_seconds * sr)))
        if (end - start) / sr < min_seconds:  # speech starts too late: keep the last max_seconds
            start, end = max(0, mono.shape[-1] - int(round(max_seconds * sr))), mono.shape[-1]
        mono = mono[start:end]
        _note(notes, f"{path}: reference voice clip lasts {seconds:.1f} s; using {mono.shape[-1] / sr:.1f} s "
                     f"from {start / sr:.2f} s (where speech starts), the recommended maximum is {max_seconds:g} s")
    elif seconds < lo:
        _note(notes, f"{path}: reference voice clip lasts {seconds:.1f} s; {lo:g}-{hi:g} s of speech carries the voice better")
    if sr != sample_rate:
        _note(notes, f"{path}: reference audio is {sr} Hz, resampled to the audio codec's {sample_rate} Hz")
        mono = resample(mono, sr, sample_rate)
    return PreparedAudio(
        waveform=mono.reshape(1, 1, -1).float().contiguous(), sample_rate=int(sample_rate), source=path,
        original_seconds=seconds, original_sample_rate=int(sr), notes=notes,
    )


__all__ = [
    "ConsentError",
    "ConsentRecord",
    "PreparedAudio",
    "PreparedImage",
    "ReferenceMediaError",
    "consent_for",
    "dbfs",
    "prepare_reference_audio",
    "prepare_reference_image",
    "require_consent",
    "require_face",
    "resize_cover_crop",
]
