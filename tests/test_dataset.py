"""ltxic.dataset: schema errors name fields, consent is enforced, validation finds planted problems, pairing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltxic.dataset import ConsentError, DatasetError, load_dataset, pair_folder, require_consent, validate_dataset
from ltxic.media import write_audio, write_image, write_video

CONSENT = {"subject": "Ava (synthetic test character)", "granted_by": "ltxic tests", "media": ["face", "voice"],
           "date": "2026-11-24", "scope": "tests", "synthetic": True}


def _clip(path: Path, frames: int, fps: float = 24.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8)
    t = np.arange(int(16000 * frames / fps)) / 16000
    write_video(path, video, fps, (0.2 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), 16000)


def _voice(path: Path, seconds: float, silent: bool = False) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    wave = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 180 * t)
    write_audio(path, wave[None].astype(np.float32), 16000)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    for k in range(3):
        _clip(root / "clips" / f"ava_{k}.mp4", 33, seed=k)
        (root / "clips" / f"ava_{k}.txt").write_text(
            ["A person nods in a dim green room, close-up.", "A person speaks in a bright blue room, close-up.",
             "A person slowly turns head left while speaking in a dim teal room, medium shot."][k])
    _clip(root / "bad" / "short.mp4", 9, seed=9)
    _voice(root / "voice" / "ava_0.wav", 6.0)
    _voice(root / "voice" / "ava_1.wav", 7.0)
    _voice(root / "bad" / "silent.wav", 6.0, silent=True)
    write_image(root / "refs" / "ava.jpg", np.full((32, 32, 3), 128, np.uint8))
    return root


def _entry(k: int, **kw) -> dict:
    e = {"identity": "ava", "video_path": f"clips/ava_{k}.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": f"voice/ava_{k % 2}.wav", "caption": "A person nods in a dim green room, close-up.",
         "split": "train"}
    return {**e, **kw}


def test_schema_errors_name_file_and_field(tmp_path):
    p = tmp_path / "dataset.json"
    p.write_text(json.dumps({"version": 1, "identities": {"ava": {"consent": {**CONSENT, "media": ["face", "smell"]}}},
                             "entries": [_entry(0, split="test")]}))
    with pytest.raises(DatasetError) as err:
        load_dataset(p)
    msg = str(err.value)
    assert str(p) in msg and "identities.ava.consent.media[1]" in msg and "entries[0].split" in msg


def test_validation_finds_exactly_the_planted_problems(media):
    data = {"version": 1, "identities": {"ava": {"consent": CONSENT}, "zed": {}},
            "entries": [
                _entry(0), _entry(1, caption="A person speaks in a bright blue room, close-up."),
                _entry(2, caption="A woman with red hair speaks in a bright blue room, close-up."),
                _entry(0, caption="A person moving naturally."),
                _entry(1, video_path="bad/short.mp4"),
                _entry(2, reference_audio="bad/silent.wav"),
                _entry(0, video_path="clips/missing.mp4"),
                _entry(1, identity="zed", caption="A person speaks in a dim grey room, medium shot."),
            ]}
    p = media / "dataset_planted.json"
    p.write_text(json.dumps(data))
    report = validate_dataset(p)
    found = {(q.entry, q.field, q.problem) for q in report.problems}
    assert found == {
        (2, "caption", "trait_caption"),
        (3, "caption", "vague_motion"),
        (3, "caption", "too_short"),
        (4, "video_path", "clip_too_short"),
        (5, "reference_audio", "silent_reference_audio"),
        (6, "video_path", "missing_file"),
        (7, "identity", "missing_consent"),
    }
    assert not report.ok and report.usable_entries() == [0, 1, 2, 3]
    assert "9 frames at 24 fps" in next(q.detail for q in report.problems if q.problem == "clip_too_short")
    assert "| 7 | identity | error | missing_consent |" in report.to_markdown()
    ds = load_dataset(p)
    require_consent(ds, ds.entries[0])
    with pytest.raises(ConsentError, match="'zed'.*add identities.zed.consent"):
        require_consent(ds, ds.entries[7])


def test_pairing_builds_a_valid_dataset(media, tmp_path):
    out = tmp_path / "paired" / "dataset.json"
    pair_folder(media / "clips", out, identity="ava", consent=CONSENT, voice_dir=media / "voice", eval_fraction=0.34)
    data = json.loads(out.read_text())
    assert [e["split"] for e in data["entries"]] == ["train", "train", "eval"]
    assert [e["reference_audio"][-9:] for e in data["entries"]] == ["ava_0.wav", "ava_1.wav", "ava_0.wav"]
    assert data["entries"][1]["caption"] == "A person speaks in a bright blue room, close-up."
    assert (out.parent / data["entries"][0]["reference_image"]).is_file()  # first frame written as the reference
    report = validate_dataset(out)
    assert report.problems == [], report.to_markdown()
    with pytest.raises(ConsentError, match="needs \\['face', 'voice'\\]"):
        pair_folder(media / "clips", tmp_path / "x.json", identity="ava", consent={**CONSENT, "media": ["face"]},
                    voice_dir=media / "voice")


def test_cli_pair_and_validate(media, tmp_path, capsys):
    from ltxic.cli import main

    consent = tmp_path / "consent.json"
    consent.write_text(json.dumps(CONSENT))
    out = tmp_path / "cli" / "dataset.json"
    assert main(["pair", str(media / "clips"), "--identity", "ava", "--consent", str(consent), "--out", str(out),
                 "--voice", str(media / "voice")]) == 0
    assert main(["validate-dataset", str(out)]) == 0
    assert "3 entries, 0 error(s)" in capsys.readouterr().out


SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.mark.skipif(not (SAMPLES / "dataset_bad.json").is_file(), reason="data_samples/ comes with the toy world")
def test_shipped_samples_clean_and_planted():
    from ltxic.captions import check_dataset_captions

    assert check_dataset_captions(SAMPLES / "dataset.json").flagged == []
    assert validate_dataset(SAMPLES / "dataset.json").problems == []
    bad = json.loads((SAMPLES / "dataset_bad.json").read_text(encoding="utf-8"))
    planted = {(p["entry"], p["field"], p["problem"]) for p in bad["planted_problems"]}
    captions = check_dataset_captions(SAMPLES / "dataset_bad.json")
    assert {i.entry for i in captions.flagged} == {e for e, f, _ in planted if f == "caption"}
    found = {(p.entry, p.field, p.problem) for p in validate_dataset(SAMPLES / "dataset_bad.json").problems}
    # the 4-word vague caption is also too short: same entry, same field
    assert found - {(e, "caption", "too_short") for e, f, _ in planted if f == "caption"} == planted
