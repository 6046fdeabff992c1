"""Energy-based voice activity, audio levels, and cutting recordings into 5-15 s voice references.

Voice activity here is deliberately simple: 20 ms frames whose RMS level is above both an absolute floor and a
level relative to the recording's loudest frames. That is enough for clean, close-miked speech (what a voice
reference should be); it is not a speech recogniser and treats loud non-speech as speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FRAME_SECONDS = 0.02
CLIP_LEVEL = 0.999  # a sample at or above this magnitude counts as clipped (full scale is 1.0)


def _mono(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, np.float32)
    return wave.mean(0) if wave.ndim == 2 else wave


def frame_levels_db(wave: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level (dBFS) of consecutive frames of a mono or (channels, samples) waveform."""
    x = _mono(wave)
    n = max(1, int(round(frame_seconds * sample_rate)))
    frames = max(1, len(x) // n)
    x = np.pad(x, (0, max(0, frames * n - len(x))))[: frames * n].reshape(frames, n)
    return 10.0 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=1) + 1e-12)


def speech_frames(
    wave: np.ndarray, sample_rate: int, *, floor_db: float = -60.0, below_loudest_db: float = 30.0
) -> np.ndarray:
    """Boolean mask over 20 ms frames: level above ``floor_db`` and within ``below_loudest_db`` of the loud frames."""
    levels = frame_levels_db(wave, sample_rate)
    loud = float(np.percentile(levels, 95))
    return levels > max(floor_db, loud - below_loudest_db)


def speech_span(wave: np.ndarray, sample_rate: int, pad_seconds: float = 0.1) -> tuple[int, int] | None:
    """(start, end) samples of the recording without its leading and trailing silence, or None if all silent."""
    mask = speech_frames(wave, sample_rate)
    if not mask.any():
        return None
    n = int(round(FRAME_SECONDS * sample_rate))
    idx = np.flatnonzero(mask)
    pad = int(pad_seconds * sample_rate)
    total = _mono(wave).shape[0]
    return max(0, idx[0] * n - pad), min(total, (idx[-1] + 1) * n + pad)


@dataclass
class AudioLevels:
    """Level measurements of one recording."""

    seconds: float
    rms_dbfs: float
    peak: float
    clipped_fraction: float  # share of samples at |x| >= CLIP_LEVEL
    speech_seconds: float  # total duration of speech frames (pauses excluded)


def audio_levels(wave: np.ndarray, sample_rate: int) -> AudioLevels:
    x = _mono(wave)
    if x.size == 0:
        return AudioLevels(0.0, -120.0, 0.0, 0.0, 0.0)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    peak = float(np.abs(x).max())
    speech = float(speech_frames(x, sample_rate).sum() * FRAME_SECONDS) if peak > 0 else 0.0
    return AudioLevels(
        seconds=len(x) / sample_rate,
        rms_dbfs=20.0 * np.log10(rms + 1e-12) if rms > 0 else -120.0,
        peak=peak,
        clipped_fraction=float(np.mean(np.abs(x) >= CLIP_LEVEL)),
        speech_seconds=speech,
    )


@dataclass
class VoiceSegment:
    """A voice reference cut from recordings: the samples and where they came from."""

    wave: np.ndarray  # mono float32
    sample_rate: int
    sources: list[dict] = field(default_factory=list)  # [{"file", "start", "end"}] in seconds

    @property
    def seconds(self) -> float:
        return len(self.wave) / self.sample_rate


def _quietest_cut(x: np.ndarray, sr: int, lo: float, hi: float) -> int:
    """Sample index in [lo, hi] seconds where the signal is quietest (a pause between words), to cut at."""
    levels = frame_levels_db(x, sr)
    n = int(round(FRAME_SECONDS * sr))
    a, b = int(lo / FRAME_SECONDS), min(len(levels), int(hi / FRAME_SECONDS))
    window = levels[a:b]
    # smooth over 400 ms: a pause between sentences wins over the short gaps between syllables
    k = 20
    smooth = np.convolve(window, np.ones(k) / k, mode="same") if len(window) >= k else window
    return (a + int(np.argmin(smooth))) * n


def choose_voice_segments(
    recordings: list[tuple[str, np.ndarray, int]],
    seconds: tuple[float, float] = (5.0, 15.0),
    gap_seconds: float = 0.25,
) -> list[VoiceSegment]:
    """Turn recordings ``(name, wave, sample_rate)`` into voice references of ``seconds[0]``-``seconds[1]`` s.

    Leading and trailing silence is dropped; a recording longer than the maximum is cut at pauses; recordings
    (or leftovers) shorter than the minimum are joined with ``gap_seconds`` of silence until long enough.
    Speech that cannot reach the minimum is dropped. All segments use the first recording's sample rate.
    """
    from ltxic.io.media import resample

    lo, hi = seconds
    if not 0 < lo < hi or 2 * lo + gap_seconds > hi:
        raise ValueError(f"seconds={seconds}: need 0 < min < max and max >= 2 * min + gap (to join short pieces)")
    if not recordings:
        return []
    sr = recordings[0][2]
    pieces: list[tuple[np.ndarray, dict]] = []
    for name, wave, rate in recordings:
        x = _mono(wave)
        if rate != sr:
            x = resample(x[None], rate, sr).numpy()[0]
        span = speech_span(x, sr)
        if span is None:
            continue
        start, end = span
        while (end - start) / sr > hi:
            cut = start + _quietest_cut(x[start:end], sr, lo, hi)
            pieces.append((x[start:cut], {"file": name, "start": round(float(start / sr), 3), "end": round(float(cut / sr), 3)}))
            nxt = speech_span(x[cut:end], sr, pad_seconds=0.05)
            if nxt is None:
                start = end
                break
            start, end = cut + nxt[0], cut + nxt[1]
        if end > start:
            pieces.append((x[start:end], {"file": name, "start": round(float(start / sr), 3), "end": round(float(end / sr), 3)}))
    out: list[VoiceSegment] = []
    pending: list[tuple[np.ndarray, dict]] = []
    gap = np.zeros(int(gap_seconds * sr), np.float32)
    for wave, src in pieces:
        if len(wave) / sr >= lo and not pending:
            out.append(VoiceSegment(wave.astype(np.float32), sr, [src]))
            continue
        pending.append((wave, src))
        joined = np.concatenate([p for w, _ in pending for p in (w, gap)][:-1])
        if len(joined) / sr >= lo:
            if len(joined) / sr > hi:  # the newest piece was long on its own: keep it separate
                pending.pop()
                out.append(VoiceSegment(wave.astype(np.float32), sr, [src]))
                if pending:  # the older short pieces stay pending
                    continue
            else:
                out.append(VoiceSegment(joined.astype(np.float32), sr, [s for _, s in pending]))
            pending = []
    return out
