"""The toy identity world: identities are distinct and stable, captions round-trip, lip sync is real, files are valid."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ltxic.io.media import probe_video, read_audio, read_video
from ltxic.toy import Scene, identity_from_name, locate_face, make_identity, render_clip, render_portrait
from ltxic.identity.toy_face_locator import box_iou
from ltxic.toy.identity import EYES, HAIR, SKIN
from ltxic.toy.make_samples import make_bad_dataset, make_dataset
from ltxic.toy.render import check_geometry
from ltxic.toy.scene import ACTIONS, BACKGROUNDS, FRAMINGS, LIGHTS

NAMES = ("ava", "bo", "ned", "dex")  # the shipped samples: bald, bun, long and short hair


def test_identities_are_seeded_and_names_are_stable():
    assert make_identity(7) == make_identity(7)
    assert make_identity(7) != make_identity(8)
    ava = identity_from_name("ava")
    assert ava == identity_from_name("ava") and ava.name == "ava"
    assert {identity_from_name(n).hair_style for n in NAMES} == {"none", "bun", "long", "short"}
    traits = [make_identity(s) for s in range(40)]
    assert len({(t.skin, t.hair, t.eyes, t.hair_style) for t in traits}) > 30  # traits really vary


def test_captions_round_trip_and_never_name_traits():
    trait_words = {w for name in (*SKIN, *HAIR, *EYES) for w in name.split()} | {"man", "woman", "hair", "eyes", "skin"}
    seen = set()
    for bg in BACKGROUNDS:
        for light in LIGHTS:
            for framing in FRAMINGS:
                for action in ACTIONS:
                    for speaking in (True, False) if action != "speaks" else (True,):
                        scene = Scene(bg, light, framing, action, speaking)
                        assert Scene.from_caption(scene.caption) == scene
                        words = set(scene.caption.lower().replace(",", " ").replace(".", " ").split())
                        assert not words & (trait_words - {"brown", "grey"} - set(BACKGROUNDS)), scene.caption
                        seen.add(scene.caption)
    assert len(seen) == 5 * 2 * 2 * 9
    assert Scene.from_caption("A person slowly turns head left while speaking in a dim green room, close-up.") == Scene(
        "green", "dim", "close-up", "turns head left", True
    )
    for bad in ("A person moving naturally.", "A woman with red hair speaks in a bright blue room, close-up."):
        with pytest.raises(ValueError, match="outside the toy vocabulary"):
            Scene.from_caption(bad)
    with pytest.raises(ValueError, match="Scene.background"):
        Scene(background="orange")


def test_geometry_is_checked():
    check_geometry(128, 96, 49)
    with pytest.raises(ValueError, match="width=100: must be a positive multiple of 32"):
        check_geometry(100, 128, 49)
    with pytest.raises(ValueError, match=r"frames=48: must be 8k\+1 \(e.g. 41 or 49\)"):
        check_geometry(128, 128, 48)


def test_render_is_fast_and_deterministic():
    ava = identity_from_name("ava")
    scene = Scene("blue", "bright", "close-up", "walks across")
    render_clip(ava, scene, seed=0)  # warm-up
    times = []
    for _ in range(2):
        start = time.process_time()  # CPU time: the CI machine is shared, wall time is not ours
        clip = render_clip(ava, scene, seed=3)
        times.append(time.process_time() - start)
    assert min(times) < 0.5, times
    assert clip.frames.shape == (49, 128, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (1, round(49 / 24 * 16000)) and clip.audio.dtype == np.float32
    again = render_clip(ava, scene, seed=3)
    assert np.array_equal(again.frames, clip.frames) and np.array_equal(again.audio, clip.audio)
    other = render_clip(ava, scene, seed=4)
    assert not np.array_equal(other.frames, clip.frames)
    # walks across: left to right, measured on the pixels
    xs = [sum(b[::2]) / 2 for b in (locate_face(clip.frames[i]) for i in (0, 48))]
    assert xs[1] - xs[0] > 40


@pytest.mark.parametrize("name", NAMES)
def test_face_locator_matches_ground_truth(name):
    who = identity_from_name(name)
    for k, (framing, light, action) in enumerate(
        [("close-up", "bright", "turns head left"), ("medium shot", "dim", "nods"), ("close-up", "dim", "walks across")]
    ):
        clip = render_clip(who, Scene("teal", light, framing, action), seed=k)
        for i in (0, 24, 48):
            box = locate_face(clip.frames[i])
            assert box is not None, (name, framing, light, i)
            assert box_iou(box, clip.truth.face_box[i]) > 0.7, (name, framing, box, clip.truth.face_box[i])
    assert locate_face(np.full((128, 128, 3), 90, np.uint8)) is None  # an empty room has no face


def _face_feature(frames: np.ndarray) -> np.ndarray:
    feats = []
    for i in (0, 24, 48):
        x0, y0, x1, y1 = locate_face(frames[i])
        feats.append(np.median(frames[i, y0:y1, x0:x1].reshape(-1, 3), axis=0))
    return np.mean(feats, axis=0)


def _f0(audio: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation pitch of the loud 40 ms windows."""
    win = int(0.04 * sr)
    frames = audio[: len(audio) // win * win].reshape(-1, win)
    rms = np.sqrt((frames**2).mean(1))
    pitches = []
    lo, hi = sr // 400, sr // 70
    for f in frames[rms > 0.5 * rms.max()]:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[win - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        pitches.append(sr / lag)
    return float(np.median(pitches))


def _centroid(audio: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    return float((spec * freqs).sum() / spec.sum())


def test_identities_differ_and_clips_of_one_identity_agree():
    faces, voices, labels = [], [], []
    for name in NAMES:
        who = identity_from_name(name)
        for k, (bg, framing) in enumerate([("blue", "close-up"), ("purple", "medium shot")]):
            clip = render_clip(who, Scene(bg, "bright", framing, "speaks"), seed=10 + k)
            faces.append(_face_feature(clip.frames))
            voices.append([np.log(_f0(clip.audio[0])) * 4, _centroid(clip.audio[0]) / 500])
            labels.append(name)
    labels = np.array(labels)
    for feats, what in ((np.array(faces), "face"), (np.array(voices), "voice")):
        d = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
        same = labels[:, None] == labels[None]
        np.fill_diagonal(d, np.inf)
        nearest = labels[d.argmin(1)]
        assert (nearest == labels).all(), (what, nearest)  # 1-NN identification over clips
        within = d[same & np.isfinite(d)].max()
        between = d[~same].min()
        assert within < between, (what, within, between)
    # the estimated pitch is the identity's voice pitch
    for name, v in zip(labels[::2], np.array(voices)[::2]):
        assert abs(np.exp(v[0] / 4) / identity_from_name(name).f0 - 1) < 0.12


def _mouth_darkness(frame: np.ndarray) -> float:
    x0, y0, x1, y1 = locate_face(frame)
    face = frame[y0:y1, x0:x1].astype(np.float32)
    luma = face @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    skin = np.median(luma)
    region = luma[int(0.58 * h) : int(0.92 * h), int(0.3 * w) : int(0.7 * w)]  # the mouth, below the eyes, inside the jaw
    return float(np.clip(0.5 * skin - region, 0, None).sum())


@pytest.mark.parametrize(("name", "light"), [("ava", "dim"), ("ned", "bright"), ("bo", "bright"), ("dex", "dim")])
def test_mouth_follows_the_speech(name, light):
    clip = render_clip(identity_from_name(name), Scene("green", light, "close-up", "speaks"), seed=5)
    mouth = np.array([_mouth_darkness(f) for f in clip.frames])
    audio, sr, fps = clip.audio[0], clip.sample_rate, clip.fps
    edges = np.clip(np.round((np.arange(len(mouth) + 1) - 0.5) / fps * sr).astype(int), 0, len(audio))
    rms = np.array([np.sqrt(np.mean(audio[a:b] ** 2)) for a, b in zip(edges[:-1], edges[1:])])
    assert mouth.max() > 0 and (mouth == 0).any()  # it opens and it closes
    assert np.corrcoef(mouth, rms)[0, 1] > 0.8
    silent = render_clip(identity_from_name(name), Scene("green", light, "close-up", "nods", speaking=False), seed=5)
    assert max(_mouth_darkness(f) for f in silent.frames) == 0 and np.abs(silent.audio).max() < 0.02


def test_portrait_is_frontal_and_neutral():
    for name in NAMES:
        img = render_portrait(identity_from_name(name))
        box = locate_face(img)
        assert img.shape == (128, 128, 3) and box is not None
        assert abs((box[0] + box[2]) / 2 - 64) < 3  # centred
        assert _mouth_darkness(img) == 0  # mouth closed


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toyds") / "a"
    kw = dict(clips_per_identity=2, eval_clips=1, width=64, height=64, frames=25, fps=12.0, voice_clips=1, seed=3, progress=False)
    make_dataset(out, [identity_from_name("ava")], [identity_from_name("dex")], **kw)
    make_bad_dataset(out, width=64, height=64, fps=12.0)
    return out


def test_dataset_files_are_valid(small_dataset):
    data = json.loads((small_dataset / "dataset.json").read_text())
    assert data["version"] == 1 and set(data["identities"]) == {"ava", "dex"}
    for record in data["identities"].values():
        assert record["consent"]["synthetic"] is True and record["consent"]["media"] == ["face", "voice"]
    assert [e["split"] for e in data["entries"]] == ["train", "train", "eval"]
    for e in data["entries"]:
        info = probe_video(small_dataset / e["video_path"])
        assert (info.frames, info.fps, info.width, info.height, info.audio_sample_rate) == (25, 12.0, 64, 64, 16000)
        assert Scene.from_caption(e["caption"])
        wav, sr = read_audio(small_dataset / e["reference_audio"])
        assert sr == 16000 and 6.0 <= wav.shape[1] / sr <= 9.0 and wav.abs().max() > 0.1
        assert (small_dataset / e["reference_image"]).exists()
    from moviepy import VideoFileClip

    clip = VideoFileClip(str(small_dataset / data["entries"][0]["video_path"]))
    try:
        assert (clip.n_frames, clip.fps, list(clip.size)) == (25, 12.0, [64, 64]) and clip.audio is not None
    finally:
        clip.close()
    truth = json.loads((small_dataset / "truth.json").read_text())
    assert len(truth["clips"][data["entries"][0]["video_path"]]["face_box"]) == 25


def test_dataset_regenerates_bit_for_bit(small_dataset, tmp_path):
    out = tmp_path / "b"
    kw = dict(clips_per_identity=2, eval_clips=1, width=64, height=64, frames=25, fps=12.0, voice_clips=1, seed=3, progress=False)
    make_dataset(out, [identity_from_name("ava")], [identity_from_name("dex")], **kw)
    make_bad_dataset(out, width=64, height=64, fps=12.0)
    files = sorted(p.relative_to(small_dataset) for p in small_dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for rel in files:
        assert (small_dataset / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_bad_dataset_plants_each_problem(small_dataset):
    bad = json.loads((small_dataset / "dataset_bad.json").read_text())
    problems = {p["problem"]: bad["entries"][p["entry"]] for p in bad["planted_problems"]}
    assert set(problems) == {"trait_caption", "vague_motion", "clip_too_short", "too_few_frames", "silent_reference_audio",
                             "missing_file", "missing_consent"}
    assert problems["too_few_frames"] == problems["clip_too_short"] and bad["rules"]["buckets"] == ["64x64x25"]
    assert "hair" in problems["trait_caption"]["caption"]
    assert problems["vague_motion"]["caption"] == "A person moving naturally."
    assert probe_video(small_dataset / problems["clip_too_short"]["video_path"]).duration < 1.0
    wav, _ = read_audio(small_dataset / problems["silent_reference_audio"]["reference_audio"])
    assert wav.abs().max() == 0
    assert not (small_dataset / problems["missing_file"]["video_path"]).exists()
    who = problems["missing_consent"]["identity"]
    assert "consent" not in bad["identities"][who]
    assert read_video(small_dataset / problems["missing_consent"]["video_path"]).shape[0] == 49
    flagged = {p["entry"] for p in bad["planted_problems"]}
    for i, e in enumerate(bad["entries"]):  # the unflagged entries are clean
        if i not in flagged:
            assert (small_dataset / e["video_path"]).exists() and "consent" in bad["identities"][e["identity"]]


def test_cli_make_dataset(tmp_path):
    from ltxic.cli import main

    args = ["toy", "make-dataset", "--identities", "1", "--eval-identities", "1", "--clips-per-identity", "1",
            "--out", str(tmp_path), "--width", "64", "--height", "32", "--frames", "9", "--fps", "12"]
    assert main(args) == 0
    data = json.loads((tmp_path / "dataset.json").read_text())
    assert [e["split"] for e in data["entries"]] == ["train", "eval"]
    info = probe_video(tmp_path / data["entries"][0]["video_path"])
    assert (info.width, info.height, info.frames) == (64, 32, 9)
