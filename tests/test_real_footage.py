"""A real-footage dataset, offline: clips made from the photographs that packages ship (a slow pan and zoom, with
espeak-ng speech as the audio), paired by ``ltxic pair`` and checked by ``ltxic validate``, then scored the way
lessons 05 and 07 score generated clips. Everything runs on the real embedders: no toy model is involved."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("dlib", "face_recognition_models",
                                                                          "resemblyzer", "skimage")),
                       reason='needs the metrics extra and scikit-image: pip install -e ".[test]"'),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from ltxic.cli import main
    from ltxic.identity.embedder_eval import photo_footage

    folder = photo_footage(tmp_path_factory.mktemp("real"), clips=1)
    assert main(["pair", str(folder / "clips"), "--voices", str(folder / "voice"), "--consent",
                 str(folder / "consent.yaml"), "--out", str(folder / "dataset.json")]) == 0
    return folder / "dataset.json"


def test_validate_reports_real_identity_per_clip_and_window(dataset, capsys) -> None:
    from ltxic.cli import main

    assert main(["validate", str(dataset), "--clips", "--json", str(dataset.parent / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "identity (real embedders: dlib ResNet face recognition v1 (128-d), Resemblyzer GE2E" in out
    report = json.loads((dataset.parent / "report.json").read_text())
    assert report["embedders"]["kind"] == "real"
    rows = report["identity"]
    assert len(rows) == 2
    for r in rows:
        assert r["face_similarity"] >= report["embedders"]["face_threshold"], r
        assert r["voice_similarity"] >= report["embedders"]["voice_threshold"], r
        assert r["lip_sync_offset_ms"] is not None and len(r["windows"]) >= 4
        assert all(w["face_similarity"] is not None for w in r["windows"])
        assert {"voice_similarity", "lip_sync_offset_ms", "lip_sync_correlation"} <= set(r["windows"][0])
    assert not [p for p in report["problems"] if p["problem"] in ("identity_mismatch", "voice_mismatch")]


def test_validate_flags_a_clip_of_someone_else(dataset, tmp_path) -> None:
    from ltxic.identity.dataset_check import validate_dataset

    data = json.loads(dataset.read_text())
    hopper = next(e for e in data["entries"] if e["identity"] == "hopper")
    collins = next(e for e in data["entries"] if e["identity"] == "collins")
    hopper["video_path"] = collins["video_path"]  # Collins's clip labelled as Hopper
    bad = dataset.parent / "mislabelled.json"
    bad.write_text(json.dumps(data))
    report = validate_dataset(bad)
    flagged = {(p.entry, p.problem) for p in report.problems}
    i = data["entries"].index(hopper)
    assert (i, "identity_mismatch") in flagged and (i, "voice_mismatch") in flagged
    assert {p.severity for p in report.problems if p.entry == i and p.problem.endswith("_mismatch")} == {"error"}
    assert not report.ok
    face = next(p.detail for p in report.problems if p.entry == i and p.problem == "identity_mismatch")
    assert "same person below 0.60" in face and "Fix: remove the entry or replace the clip" in face


def test_a_clip_with_8khz_audio_is_named_as_low_rate_not_another_speaker(dataset) -> None:
    from ltxic.identity.dataset_check import validate_dataset
    from ltxic.io.media import read_video, read_video_audio, resample, write_video

    data = json.loads(dataset.read_text())
    e = data["entries"][0]
    src = dataset.parent / e["video_path"]
    phone = dataset.parent / "phone.mp4"  # inside the dataset's folder, as pair writes paths
    write_video(phone, read_video(src), 24.0, resample(read_video_audio(src), 16000, 8000), 8000)
    e["video_path"] = "phone.mp4"
    bad = dataset.parent / "phone.json"
    bad.write_text(json.dumps(data))
    report = validate_dataset(bad)
    mine = {p.problem: p for p in report.problems if p.entry == 0}
    assert "voice_mismatch" not in mine and mine["voice_sample_rate"].severity == "error"
    assert "phone.mp4: sample rate 8000 Hz is below the 16000 Hz" in mine["voice_sample_rate"].detail


def test_checkpoint_table_and_drift_use_the_real_embedders(dataset) -> None:
    """Lessons 05 and 07 on real footage: the dataset's own clips stand in for generated ones."""
    from ltxic.identity.metrics import CheckpointSample, compare_checkpoints, identity_windows
    from ltxic.identity.real import FACE_THRESHOLD

    data = json.loads(dataset.read_text())
    root = dataset.parent
    samples = {step: [CheckpointSample(root / e["video_path"], root / e["reference_image"], root / e["reference_audio"],
                                       e["caption"]) for e in data["entries"]] for step in (2000, 3500)}
    rows = compare_checkpoints(samples, dataset=dataset)
    for row in rows:
        assert row["embedders"].startswith("real: face dlib ResNet")
        assert row["face_similarity"] > FACE_THRESHOLD and row["voice_similarity"] is not None
        assert row["background_match"] is None and row["motion_match"] is None  # toy-only checks stay off
    e = data["entries"][0]
    curve = identity_windows(root / e["video_path"], root / e["reference_image"], root / e["reference_audio"],
                             window_s=1.0, dataset=dataset)
    assert curve.embedders.startswith("real") and len(curve.times) >= 4
    assert curve.voice is not None and curve.lip_sync is not None
    assert all(r["face_similarity"] is not None for r in curve.rows())
