"""Toy speech: a glottal source at the identity's pitch, shaped by its formants, in syllables with pauses.

Not language, but it has what identity and lip-sync need: a speaker-specific pitch and spectral envelope, and an
amplitude envelope (syllables, phrases, pauses) that the rendered mouth follows.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from ltxic.toy.identity import Identity

# vowel formants relative to the speaker's neutral vowel (F1, F2, F3)
VOWELS = np.array([[1.5, 0.82, 1.0], [0.56, 1.5, 1.18], [0.62, 0.58, 0.92], [0.92, 1.24, 1.05], [1.02, 0.62, 0.95]])
BANDWIDTHS = np.array([80.0, 110.0, 160.0])
NOISE_FLOOR = 0.002


def _rosenberg(phase: np.ndarray) -> np.ndarray:
    """Glottal flow of one period per unit phase: opening, closing, closed."""
    p = phase % 1.0
    flow = np.where(p < 0.55, 0.5 * (1 - np.cos(np.pi * p / 0.55)), 0.0)
    closing = (p >= 0.55) & (p < 0.85)
    flow[closing] = np.cos(0.5 * np.pi * (p[closing] - 0.55) / 0.3)
    return flow


def _resonate(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    r = np.exp(-np.pi * bw / sr)
    theta = 2 * np.pi * min(freq, 0.45 * sr) / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def synthesize_speech(
    identity: Identity, samples: int, rng: np.random.Generator, sample_rate: int = 16000, speaking: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` of speech (float32 in [-1, 1]) and its amplitude envelope (float32 in [0, 1]), both (samples,)."""
    sr = sample_rate
    out = NOISE_FLOOR * rng.standard_normal(samples)
    env = np.zeros(samples)
    if not speaking:
        return out.astype(np.float32), env.astype(np.float32)
    t = rng.uniform(0.04, 0.22)
    total = samples / sr
    while t < total - 0.12:
        n_syll = int(rng.integers(2, 6))
        declination = np.linspace(1.05, 0.95, n_syll) * (1.03 if rng.random() < 0.25 else 1.0)
        for k in range(n_syll):
            dur = rng.uniform(0.14, 0.26) / identity.speech_rate
            if t + dur > total - 0.02:
                break
            n = int(dur * sr)
            start = int(t * sr)
            u = np.arange(n) / n
            shape = np.sin(np.pi * u) ** 0.7
            amp = rng.uniform(0.55, 1.0)
            # pitch: phrase declination, a per-syllable accent, slow jitter
            accent = 1 + rng.uniform(-0.04, 0.04) + 0.03 * np.sin(np.pi * u) * rng.choice([-1, 1])
            jitter = 1 + 0.012 * np.cumsum(rng.standard_normal(n)) / np.sqrt(np.arange(1, n + 1))
            f0 = identity.f0 * declination[k] * accent * jitter
            phase = rng.random() + np.cumsum(f0) / sr
            source = np.diff(_rosenberg(phase), prepend=0.0)
            source = source / (np.std(source) + 1e-9) + identity.breathiness * 4 * rng.standard_normal(n)
            # vowels move the formants around the speaker's own centres (compressed: the timbre stays recognisable)
            vowel = (1 + 0.6 * (VOWELS[rng.integers(len(VOWELS))] - 1)) * np.asarray(identity.formants)
            y = source
            for freq, bw in zip(vowel, BANDWIDTHS):
                y = _resonate(y, freq, bw, sr)
            y = _resonate(y, identity.formants[2] * 1.4, 250.0, sr) + 0.6 * y  # speaker's high resonance
            y = y / (np.sqrt(np.mean(y**2)) + 1e-9)
            out[start : start + n] += 0.22 * amp * shape * y
            env[start : start + n] = np.maximum(env[start : start + n], amp * shape)
            t += dur + rng.uniform(0.0, 0.05)
        t += rng.uniform(0.15, 0.45)
    return np.clip(out, -1, 1).astype(np.float32), env.astype(np.float32)


def frame_envelope(env: np.ndarray, frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Mean of an audio-rate envelope over each video frame's time window, shape (frames,)."""
    edges = np.round((np.arange(frames + 1) - 0.5) / fps * sample_rate).astype(int).clip(0, len(env))
    csum = np.concatenate([[0.0], np.cumsum(env, dtype=np.float64)])
    width = np.maximum(edges[1:] - edges[:-1], 1)
    return ((csum[edges[1:]] - csum[edges[:-1]]) / width).astype(np.float32)
