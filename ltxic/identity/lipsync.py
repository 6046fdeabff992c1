"""Lip sync without SyncNet: does the mouth open and close with the speech, and at what offset?

The mouth's opening per frame (from face landmarks, :meth:`~ltxic.identity.embedders.FaceLocator.mouth_aperture`) is
correlated with the speech energy envelope (RMS over each frame's time window) with the audio moved against the
video in small steps. The best Pearson correlation and its offset are SyncNet's two numbers in spirit: how well the
mouth follows the speech (LSE-C) and by how much the audio is early or late (the AV offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LipSync", "lip_sync", "speech_envelope"]


@dataclass
class LipSync:
    """``offset_ms``: where the audio matches the mouth best; positive = the audio comes later than the mouth.
    ``correlation``: Pearson r there (1 = the mouth follows the speech exactly; unrelated audio stays near 0).
    ``correlation_at_zero``: r with the audio as it is. ``confidence``: the peak's height over the median of the
    curve (SyncNet's confidence in spirit: a mouth that follows the speech has one clear peak; a still mouth or
    unrelated audio gives a low, flat curve). ``lags_ms`` / ``correlations``: the whole curve."""

    offset_ms: float
    correlation: float
    correlation_at_zero: float
    lags_ms: np.ndarray
    correlations: np.ndarray
    mouth_frames: float  # share of frames with a measured mouth
    fps: float
    confidence: float = float("nan")

    @property
    def offset_frames(self) -> float:
        return self.offset_ms * self.fps / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {"offset_ms": round(self.offset_ms, 1), "correlation": round(self.correlation, 4),
                "confidence": round(self.confidence, 4),
                "correlation_at_zero": round(self.correlation_at_zero, 4), "mouth_frames": round(self.mouth_frames, 4)}


def speech_envelope(waveform: np.ndarray, sr: int, fps: float, frames: int, offset_s: float = 0.0) -> np.ndarray:
    """(frames,) RMS of ``waveform`` (N,) over each video frame's window, centred at ``i / fps + offset_s``;
    NaN where the window leaves the recording."""
    wave = np.asarray(waveform, np.float64)
    csum = np.concatenate([[0.0], np.cumsum(wave**2)])
    centre = np.arange(frames) / fps + offset_s
    lo = np.round((centre - 0.5 / fps) * sr).astype(np.int64)
    hi = np.round((centre + 0.5 / fps) * sr).astype(np.int64)
    ok = (lo >= 0) & (hi <= len(wave)) & (hi > lo)
    out = np.full(frames, np.nan)
    out[ok] = np.sqrt((csum[hi[ok]] - csum[lo[ok]]) / (hi[ok] - lo[ok]))
    return out


def _pearson(a: np.ndarray, b: np.ndarray, min_count: int) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < min_count:
        return float("nan")
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def lip_sync(aperture: np.ndarray, waveform: np.ndarray, sr: int, fps: float, *, max_offset_ms: float = 500.0,
             step_ms: float = 5.0, t0_s: float = 0.0, source: Any = None) -> LipSync:
    """Correlate the mouth opening (F,) with the speech envelope of mono ``waveform`` at offsets up to
    ±``max_offset_ms``; ``aperture[0]`` shows the frame at ``t0_s`` seconds into the waveform. Raises ValueError
    (naming ``source``) when the audio is silent or too few frames show a mouth (at least half, and 8)."""
    from ltxic.identity.embedders import SilentAudioError

    where = str(source) if source is not None else "the clip"
    a = np.asarray(aperture, np.float64)
    wave = np.asarray(waveform, np.float64)
    if wave.ndim == 2:
        wave = wave.mean(0)
    if fps <= 0 or sr <= 0:
        raise ValueError(f"{where}: fps ({fps}) and sample rate ({sr}) must be positive")
    n = len(a)
    measured = np.isfinite(a)
    min_count = max(8, n // 2)
    if measured.sum() < min_count:
        raise ValueError(f"{where}: a mouth was measured in {int(measured.sum())} of {n} frames (need {min_count}); "
                         "lip sync needs the face visible and frontal in most frames")
    if not len(wave) or float(np.sqrt(np.mean(wave**2))) < 1e-4 or np.nanstd(speech_envelope(wave, sr, fps, n, t0_s)) < 1e-5:
        raise SilentAudioError(f"{where}: the audio is silent, so there is no speech for the mouth to follow; "
                               "check that the clip's audio track holds the speech")
    lags = np.arange(-max_offset_ms, max_offset_ms + step_ms / 2, step_ms)
    corr = np.array([_pearson(a, speech_envelope(wave, sr, fps, n, t0_s + lag / 1000.0), min_count) for lag in lags])
    if not np.isfinite(corr).any():
        raise ValueError(f"{where}: no offset left enough overlapping frames; use a clip of at least a second")
    best = int(np.nanargmax(corr))
    zero = corr[int(np.argmin(np.abs(lags)))]
    confidence = float(corr[best] - np.nanmedian(corr))
    return LipSync(float(lags[best]), float(corr[best]), float(zero), lags, corr, float(measured.mean()), float(fps),
                   confidence)
