"""Lip sync: on toy clips (the mouth follows the speech envelope by construction) the measured offset recovers a
known shift of the audio within one frame, and unrelated audio scores clearly lower."""

from __future__ import annotations

import numpy as np
import pytest

from ltxic.identity.embedders import SilentAudioError
from ltxic.identity.select import identity_models
from ltxic.identity.lipsync import lip_sync
from ltxic.identity.metrics import clip_lip_sync
from ltxic.identity.toy_embedders import HELD_OUT_SEED_BASE
from ltxic.toy.identity import make_identity
from ltxic.toy.render import render_clip
from ltxic.toy.scene import Scene

SCENE = Scene.from_caption("A person speaks in a bright blue room, close-up.")


@pytest.fixture(scope="module")
def clips():
    a = render_clip(make_identity(HELD_OUT_SEED_BASE + 11), SCENE, seed=3, frames=97)
    b = render_clip(make_identity(HELD_OUT_SEED_BASE + 12), SCENE, seed=4, frames=97)
    return a, b, identity_models("toy").mouth_aperture(a.frames)


def shifted(audio: np.ndarray, ms: float, sr: int) -> np.ndarray:
    """The audio delayed by ``ms`` (negative: advanced), padded with silence."""
    k = int(round(ms / 1000 * sr))
    out = np.zeros_like(audio)
    if k >= 0:
        out[k:] = audio[: len(audio) - k]
    else:
        out[:k] = audio[-k:]
    return out


@pytest.mark.parametrize("shift_ms", [0, 80, -80, 200, -200])
def test_known_shift_is_recovered_within_one_frame(clips, shift_ms) -> None:
    a, _, aperture = clips
    r = lip_sync(aperture, shifted(a.audio[0], shift_ms, a.sample_rate), a.sample_rate, a.fps)
    assert abs(r.offset_ms - shift_ms) <= 1000 / a.fps, (r.offset_ms, shift_ms)
    assert r.correlation > 0.8


def test_unrelated_audio_scores_clearly_lower(clips) -> None:
    a, b, aperture = clips
    own = lip_sync(aperture, a.audio[0], a.sample_rate, a.fps)
    other = lip_sync(aperture, b.audio[0], b.sample_rate, b.fps)
    print(own.to_dict(), other.to_dict())
    assert own.correlation > other.correlation + 0.4
    assert own.confidence > other.confidence + 0.3


def test_clip_lip_sync_from_a_file(tmp_path, clips) -> None:
    from ltxic.io.media import write_video

    a, _, _ = clips
    path = write_video(tmp_path / "clip.mp4", a.frames, a.fps, shifted(a.audio[0], 120, a.sample_rate)[None], a.sample_rate)
    r = clip_lip_sync(path, "toy")
    assert abs(r.offset_ms - 120) <= 1000 / a.fps


def test_failures_name_the_clip(clips) -> None:
    a, _, aperture = clips
    with pytest.raises(SilentAudioError, match="clip.mp4: the audio is silent"):
        lip_sync(aperture, np.zeros_like(a.audio[0]), a.sample_rate, a.fps, source="clip.mp4")
    with pytest.raises(ValueError, match=r"clip.mp4: a mouth was measured in 0 of 97 frames"):
        lip_sync(np.full(97, np.nan), a.audio[0], a.sample_rate, a.fps, source="clip.mp4")
