"""Identity metrics on rendered toy clips: similarity to own vs other reference, scene checks, drift, plots."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from ltxic.io.media import write_audio, write_image, write_video
from ltxic.identity.metrics import (
    CheckpointSample,
    background_colour,
    caption_adherence,
    compare_checkpoints,
    drift_curve,
    face_similarity,
    identity_scores,
    motion_direction,
    plot_checkpoint_comparison,
    plot_drift,
    voice_similarity,
)
from ltxic.toy import Scene, make_identity, render_clip, render_portrait
from ltxic.identity.toy_embedders import DEFAULT_DIR, FACE_FILE, HELD_OUT_SEED_BASE, load_embedders
from ltxic.toy.voice import synthesize_speech

pytestmark = pytest.mark.skipif(
    not (DEFAULT_DIR / FACE_FILE).is_file(), reason="shipped toy embedders absent (python -m ltxic.identity.toy_embedders)"
)
A, B = make_identity(HELD_OUT_SEED_BASE + 900_001), make_identity(HELD_OUT_SEED_BASE + 900_002)


def _voice(identity, seconds: float = 4.0, seed: int = 1) -> np.ndarray:
    return synthesize_speech(identity, int(seconds * 16000), np.random.default_rng(seed))[0]


@pytest.fixture(scope="module")
def clip_a():
    return render_clip(A, Scene("teal", "bright", "close-up", "turns head left"), seed=5, frames=49)


def test_face_similarity_prefers_own_reference(clip_a):
    own = face_similarity(clip_a.frames, render_portrait(A))
    other = face_similarity(clip_a.frames, render_portrait(B))
    assert own.shape == (49,)
    assert np.nanmean(own) > np.nanmean(other) + 0.3
    assert np.nanmean(own) > 0.7


def test_voice_similarity_prefers_own_reference(clip_a):
    own = voice_similarity(clip_a.audio, 16000, _voice(A), 16000)
    other = voice_similarity(clip_a.audio, 16000, (_voice(B), 16000))
    assert own.ndim == 1 and len(own) == 3  # 2.04 s of audio, 1 s windows every 0.5 s
    assert np.nanmean(own) > np.nanmean(other) + 0.3


def test_voice_windows_and_silence():
    wave = np.concatenate([_voice(A, 2.0), np.zeros(16000 * 2, np.float32)])
    sims = voice_similarity(wave, 16000, _voice(A), 16000)
    assert len(sims) == 7  # 4 s, 1 s windows every 0.5 s
    assert np.isnan(sims[-2:]).all() and np.isfinite(sims[:2]).all()
    with pytest.raises(ValueError, match="sample rate"):
        voice_similarity(wave, 16000, _voice(A))


def test_identity_scores_from_files(tmp_path, clip_a):
    video = write_video(tmp_path / "a.mp4", clip_a.frames, clip_a.fps, clip_a.audio, 16000)
    ref_img = write_image(tmp_path / "a.jpg", render_portrait(A))
    ref_wav = write_audio(tmp_path / "a.wav", _voice(A)[None], 16000)
    own = identity_scores(video, ref_img, ref_wav)
    other = identity_scores(video, render_portrait(B), (_voice(B), 16000))
    assert own["face_found"] > 0.8 and own["frames"] == 49
    assert own["face_similarity"] > other["face_similarity"] + 0.3
    assert own["voice_similarity"] > other["voice_similarity"] + 0.3
    silent = identity_scores(clip_a.frames, render_portrait(A))
    assert silent["voice_similarity"] is None


def test_reference_without_face_is_refused():
    with pytest.raises(ValueError, match="no face was located"):
        face_similarity(np.zeros((2, 64, 64, 3), np.uint8), np.full((128, 128, 3), 128, np.uint8))


CASES = [
    (Scene("blue", "bright", "close-up", "turns head left"), "turns head left"),
    (Scene("purple", "dim", "close-up", "turns head right"), "turns head right"),
    (Scene("grey", "bright", "medium shot", "walks across"), "walks across"),
    (Scene("green", "dim", "close-up", "speaks"), "still"),
    (Scene("teal", "bright", "medium shot", "nods"), "still"),
]


@pytest.mark.parametrize("scene,motion", CASES, ids=[c[0].background + "-" + c[0].action for c in CASES])
def test_scene_checks_recover_background_and_motion(scene, motion):
    clip = render_clip(B, scene, seed=11, frames=25)
    assert background_colour(clip.frames) == (scene.background, scene.light)
    assert motion_direction(clip.frames) == motion
    adh = caption_adherence(clip.frames, clip.caption)
    assert adh["background_match"] is True and adh["motion_match"] is True
    other_bg = "green" if scene.background != "green" else "blue"
    wrong = Scene(other_bg, scene.light, scene.framing, "turns head right" if motion != "turns head right" else "nods")
    adh = caption_adherence(clip.frames, wrong.caption)
    assert adh["background_match"] is False and adh["motion_match"] is False
    assert caption_adherence(clip.frames, "A person dances on a beach.")["background_match"] is None


def test_drift_curve_shape_and_missing_faces(clip_a):
    frames = np.concatenate([clip_a.frames[:25], clip_a.frames[:25], np.zeros_like(clip_a.frames[:36])])  # 86 frames
    curve = drift_curve(frames, render_portrait(A), window_s=1.0, fps=24.0)
    assert curve.per_frame.shape == (86,)
    assert len(curve.times) == len(curve.similarity) == 6  # windows of 24 frames every 12: starts 0..60
    assert np.allclose(curve.times, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert np.isnan(curve.per_frame[-36:]).all() and np.isnan(curve.similarity[-1])  # frames 60..83: no face
    assert curve.similarity[0] > 0.7


def test_compare_checkpoints_and_plots(clip_a):
    emb = load_embedders()
    good = CheckpointSample(clip_a, render_portrait(A), (_voice(A), 16000), clip_a.caption)
    bad = {"video": clip_a, "reference_image": render_portrait(B), "reference_audio": (_voice(B), 16000),
           "caption": Scene("purple", "dim", "close-up", "nods").caption}
    rows = compare_checkpoints({3500: [good], 2000: [bad]}, emb)
    assert [r["step"] for r in rows] == [2000, 3500]
    assert rows[1]["face_similarity"] > rows[0]["face_similarity"] + 0.3
    assert rows[1]["voice_similarity"] > rows[0]["voice_similarity"] + 0.3
    assert rows[1]["background_match"] == 1.0 and rows[1]["motion_match"] == 1.0
    assert rows[0]["background_match"] == 0.0 and rows[0]["motion_match"] == 0.0
    fig = plot_checkpoint_comparison(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    curve = drift_curve(clip_a.frames, render_portrait(A), 0.5, clip_a.fps, emb)
    fig = plot_drift({"own": curve}, threshold=0.69)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    # IPython shows it as an image even with no pyplot backend registered (a fresh papermill kernel that displays
    # the figure before any pyplot call printed "<Figure size 700x340 with 1 Axes>")
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_pick_checkpoint_prefers_the_earliest_plateau():
    from ltxic.identity.metrics import pick_checkpoint

    def row(step, face, voice, bg, motion):
        return {"step": step, "face_similarity": face, "voice_similarity": voice, "background_match": bg, "motion_match": motion}

    # identity plateaus at 200; 300 gains 0.02 more but its caption adherence drops: keep 200
    rows = [row(100, 0.2, 0.3, 1.0, 0.5), row(200, 0.55, 0.6, 1.0, 0.5), row(300, 0.58, 0.61, 0.5, 0.0)]
    assert pick_checkpoint(rows)["step"] == 200
    # near-best identity everywhere but adherence only at the last: the last
    rows = [row(100, 0.6, 0.6, 0.0, 0.0), row(200, 0.6, 0.6, 1.0, 1.0)]
    assert pick_checkpoint(rows)["step"] == 200
    # no caption ground truth: the earliest near-best identity
    rows = [row(100, 0.6, 0.6, None, None), row(200, 0.62, 0.6, None, None)]
    assert pick_checkpoint(rows) == {"step": 100, "identity": 0.6, "adherence": None,
                                     "why": "the earliest step within 0.05 of the best identity (0.61)"}
    with pytest.raises(ValueError, match="no checkpoint has a face or voice similarity"):
        pick_checkpoint([row(100, None, None, 1.0, 1.0)])
