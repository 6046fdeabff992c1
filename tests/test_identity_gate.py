"""Identity decides: a clip of another toy identity listed under this identity's name is an error in ``ltxic validate``
(exit 1) and stops ``ltxic train`` before caching, unless the run overrides it, which the run then records."""

from __future__ import annotations

import json

import pytest
import yaml

from ltxic.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _mislabel(dataset_json):
    """The dataset with its second clip of the first identity replaced by a clip of the other identity."""
    data = json.loads(dataset_json.read_text())
    first = data["entries"][0]["identity"]
    mine = [e for e in data["entries"] if e["identity"] == first]
    other = next(e for e in data["entries"] if e["identity"] != first)
    mine[1]["video_path"] = other["video_path"]
    bad = dataset_json.parent / "mislabelled.json"
    bad.write_text(json.dumps(data))
    return bad, data["entries"].index(mine[1]), other["video_path"]


def _config(tmp_path, dataset_json, **dataset):
    from ltxic.training.config import example_config, load_config

    cfg = load_config(example_config("tiny_cpu"), check_files=False).model_dump(mode="json")
    cfg["dataset"].update(dataset_file=str(dataset_json), resolution_buckets=["64x64x17"],
                          cache_dir=str(tmp_path / "cache"), **dataset)
    cfg["optimization"].update(steps=2, warmup_steps=1)
    cfg["lora"].update(rank=4, alpha=4)
    cfg["validation"].update(interval=0)
    cfg["output"].update(dir=str(tmp_path / "out"), checkpoint_interval=0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validate_exits_non_zero_on_a_wrong_person_clip(tmp_path, tiny_kit, capsys) -> None:
    bad, i, clip = _mislabel(tiny_kit)
    assert main(["validate", str(tiny_kit), "--identity", "--json", str(tmp_path / "good.json")]) == 0
    good = json.loads((tmp_path / "good.json").read_text())
    assert good["ok"] and good["embedders"]["kind"] == "toy" and good["embedders"]["decisive"]
    assert main(["validate", str(bad), "--identity", "--json", str(tmp_path / "bad.json")]) == 1
    report = json.loads((tmp_path / "bad.json").read_text())
    found = [p for p in report["problems"] if p["problem"] == "identity_mismatch"]
    assert [(p["entry"], p["severity"]) for p in found] == [(i, "error")]
    assert clip in found[0]["detail"] and "remove the entry or replace the clip" in found[0]["detail"]


def test_train_refuses_then_trains_with_the_override_and_records_it(tmp_path, tiny_kit, capsys) -> None:
    bad, i, clip = _mislabel(tiny_kit)
    run = _config(tmp_path, bad, identity_checks=True)
    assert main(["train", str(run)]) == 1
    err = capsys.readouterr().err
    assert "refusing to train" in err and f"entry {i} ({clip}): identity_mismatch" in err and "Fix: remove" in err
    assert "--allow-invalid-dataset" in err and "Traceback" not in err
    out = tmp_path / "out"
    assert not (tmp_path / "cache").exists() and not out.exists()  # nothing cached, trained or written

    assert main(["train", str(run), "--allow-invalid-dataset"]) == 0
    record = json.loads((out / "dataset_check.json").read_text())
    assert record["overridden"] and record["override"] == "ltxic train --allow-invalid-dataset"
    assert [(e["entry"], e["problem"]) for e in record["errors"]] == [(i, "identity_mismatch")]
    stages = json.loads((out / "stages.json").read_text())
    assert stages["dataset_check"] == {"ok": False, "errors": 1, "overridden": True,
                                       "override": "ltxic train --allow-invalid-dataset"}
    assert "dataset check" in stages["stages"]
    assert (out / "checkpoints" / "step_000002" / "lora.safetensors").is_file()


def test_config_field_overrides_and_a_clean_toy_dataset_trains(tmp_path, tiny_kit) -> None:
    from ltxic.training.config import load_config
    from ltxic.training.trainer import train

    bad, i, _ = _mislabel(tiny_kit)
    result = train(load_config(_config(tmp_path / "a", bad, identity_checks=True, allow_validation_errors=True)),
                   progress=False)
    assert result.step == 2
    record = json.loads((tmp_path / "a" / "out" / "dataset_check.json").read_text())
    assert record["override"] == "dataset.allow_validation_errors: true" and record["errors"][0]["entry"] == i
    # the synthetic default: identity checks off, and the toy dataset passes its own rules
    train(load_config(_config(tmp_path / "b", tiny_kit)), progress=False)
    record = json.loads((tmp_path / "b" / "out" / "dataset_check.json").read_text())
    assert record["ok"] and not record["identity_checked"] and record["override"] is None


def _clips(folder, people, name="ava", more=()):
    """Toy clips ``<name>_<k>.mp4`` (with captions), clip k showing ``people[k]``; consent records for ``name`` and
    for ``more`` (each with two clips of its own)."""
    from ltxic.io.media import write_video
    from ltxic.toy import Scene, identity_from_name, render_clip
    from ltxic.toy.make_samples import consent_record, toy_rules

    (folder / "clips").mkdir(parents=True)
    plan = [(name, k, who) for k, who in enumerate(people)] + [(m, k, m) for m in more for k in range(2)]
    for label, k, who in plan:
        clip = render_clip(identity_from_name(who), Scene(), seed=k, width=128, height=128, frames=25, fps=24.0)
        write_video(folder / "clips" / f"{label}_{k}.mp4", clip.frames, 24.0, clip.audio, clip.sample_rate)
        (folder / "clips" / f"{label}_{k}.txt").write_text("A person speaks in a bright grey room, close-up.")
    (folder / "consent.yaml").write_text(yaml.safe_dump({n: consent_record(identity_from_name(n)) for n in (name, *more)}))
    (folder / "rules.yaml").write_text(yaml.safe_dump(toy_rules(128, 128, 25)))


def test_pair_picks_the_reference_the_clips_agree_on_and_names_the_odd_one(tmp_path, capsys) -> None:
    _clips(tmp_path, ["bo", "ava", "ava", "ava"])  # the first clip in sort order shows someone else
    out = tmp_path / "dataset.json"
    assert main(["pair", str(tmp_path / "clips"), "--consent", str(tmp_path / "consent.yaml"), "--out", str(out),
                 "--reference", "first", "--rules", str(tmp_path / "rules.yaml")]) == 0
    err = capsys.readouterr().err
    assert "clips/ava_0.mp4: shows another face than most clips of 'ava'" in err
    agreement = json.loads(out.read_text())["pairing"]["ava"]["reference_image"]
    assert agreement["source"] == "clips/ava_1.mp4" and agreement["how"] == "first frame"
    assert agreement["agreement"]["agreeing"] == ["clips/ava_1.mp4", "clips/ava_2.mp4", "clips/ava_3.mp4"]
    assert [d["clip"] for d in agreement["agreement"]["disagreeing"]] == ["clips/ava_0.mp4"]
    # the reference shows ava, so validate flags the odd clip, not the three right ones
    assert main(["validate", str(out), "--identity", "--json", str(tmp_path / "report.json")]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(p["entry"], p["problem"]) for p in report["problems"] if p["severity"] == "error"] == [(0, "identity_mismatch")]


def test_pair_refuses_when_no_face_is_a_majority(tmp_path, capsys) -> None:
    _clips(tmp_path, ["bo", "ava"], more=("abe",))  # abe's two clips agree, and abe is paired first
    assert main(["pair", str(tmp_path / "clips"), "--consent", str(tmp_path / "consent.yaml"), "--out",
                 str(tmp_path / "dataset.json")]) == 1
    err = capsys.readouterr().err
    assert "the clips of 'ava' do not agree on one face" in err and "ava_0.mp4" in err and "ava_1.mp4" in err
    assert not (tmp_path / "dataset.json").exists() and not (tmp_path / "refs").exists()
