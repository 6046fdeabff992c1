"""ltxic.data.captions: rules flag planted problems, leave clean captions alone, and the rewrite keeps scene and action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltxic.data.captions import (
    check_caption,
    check_captions,
    clean_dataset,
    load_rules,
    suggest_rewrite,
)

CLEAN = [
    "A person slowly turns head left while speaking in a dim green room, close-up.",
    "A person speaks in a bright blue room, close-up.",
    "A person nods in a dim teal room, medium shot.",
    "A person walks across from left to right while speaking in a bright purple room, medium shot.",
    "A person slowly turns head right in a bright grey room, close-up.",
    "A person raises one hand and waves twice toward the camera on a windy beach at sunset.",
]


def kinds(text: str) -> set[str]:
    return {i.kind for i in check_caption(text)}


@pytest.mark.parametrize("text", CLEAN)
def test_clean_captions_are_not_flagged(text):
    assert check_caption(text) == []
    assert suggest_rewrite(text) == text


@pytest.mark.parametrize(
    "text, kind, match",
    [
        ("A person with curly red hair speaks in a bright blue room, close-up.", "trait", "curly red hair"),
        ("A person with hazel eyes nods in a dim green room, close-up.", "trait", "hazel eyes"),
        ("A pale-skinned person speaks in a dim grey room, medium shot.", "trait", "pale-skinned"),
        ("An elderly person slowly turns head left in a bright room.", "trait", "elderly"),
        ("A 25-year-old person nods in a dim teal room, close-up.", "trait", "25-year-old"),
        ("A muscular person walks across a bright purple room.", "trait", "muscular"),
        ("A person with a thick beard speaks in a dim blue room.", "trait", "a thick beard"),
        ("A woman speaks in a bright blue room, close-up.", "gender", "woman"),
        ("The guy nods twice in a dim green room, close-up.", "gender", "guy"),
        ("A person slowly turns his head left in a dim room.", "gender", "his"),
        ("A person moving naturally in a bright blue room, close-up.", "vague_motion", "moving naturally"),
        ("A person with natural movement in a bright teal room.", "vague_motion", "natural movement"),
        ("A person doing things in a dim grey room, medium shot.", "vague_motion", "doing things"),
        ("A person moves around in a bright purple room, close-up.", "vague_motion", "moves around"),
    ],
)
def test_each_rule_kind_is_flagged(text, kind, match):
    issues = [i for i in check_caption(text) if i.kind == kind]
    assert [i.match for i in issues] == [match]
    assert issues[0].suggestion  # every flag says what to do instead


def test_length_rules():
    assert kinds("A person nods.") == {"too_short"}
    long = "A person slowly turns head left while speaking in a dim green room, close-up, " * 8
    assert kinds(long) == {"too_long"}
    assert kinds("A person nods.") - {"too_short"} == set()
    assert check_caption("A person nods.", min_words=3) == []


def test_rewrite_removes_traits_keeps_action_and_scene():
    assert suggest_rewrite("A woman with red hair slowly turns her head left") == "A person slowly turns head left"
    assert (
        suggest_rewrite("A young blonde woman with blue eyes and freckles nods in a bright blue room, close-up.")
        == "A person nods in a bright blue room, close-up."
    )
    assert (
        suggest_rewrite("An elderly bearded man with short grey hair walks across a kitchen, medium shot.")
        == "A person walks across a kitchen, medium shot."
    )
    assert suggest_rewrite("She smiles and raises her hand to greet him.") == (
        "The person smiles and raises hand to greet the person."
    )
    assert suggest_rewrite("Two women talk while a man watches in a cafe.") == (
        "Two people talk while a person watches in a cafe."
    )
    for text in (
        "A tall, slim man with a beard nods twice in a dim room.",
        "A 30-year-old Asian woman speaks to the camera, close-up.",
    ):
        rewritten = suggest_rewrite(text)
        assert not {i.kind for i in check_caption(rewritten)} & {"trait", "gender"}, rewritten
    # vague motion is left for a person to describe: the rewrite invents no motion
    assert suggest_rewrite("A person moving naturally.") == "A person moving naturally."


DATASET = {
    "version": 1,
    "identities": {
        "ava": {"consent": {"subject": "Ava (synthetic toy character)", "media": ["face", "voice"]}},
        "bram": {"consent": {"subject": "Bram (synthetic toy character)", "media": ["face", "voice"]}},
    },
    "entries": [
        {"identity": "ava", "video_path": "clips/ava_000.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": "voice/ava_0.wav", "caption": CLEAN[0], "split": "train"},
        {"identity": "ava", "video_path": "clips/ava_001.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": "voice/ava_0.wav",
         "caption": "A woman with red hair and green eyes speaks in a bright blue room, close-up.", "split": "train"},
        {"identity": "ava", "video_path": "clips/ava_002.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": "voice/ava_1.wav", "caption": "A person moving naturally.", "split": "train"},
        {"identity": "ava", "video_path": "clips/ava_003.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": "voice/ava_1.wav", "caption": "Bram nods in a dim teal room, medium shot.", "split": "train"},
        {"identity": "bram", "video_path": "clips/bram_000.mp4", "reference_image": "refs/bram.jpg",
         "reference_audio": "voice/bram_0.wav",
         "caption": "A person slowly turns head left while speaking in a dim green room, close up.", "split": "eval"},
        {"identity": "bram", "video_path": "clips/bram_001.mp4", "reference_image": "refs/bram.jpg",
         "reference_audio": "voice/bram_0.wav", "caption": CLEAN[2], "split": "eval"},
    ],
}


def test_dataset_checks_conflicts_names_and_near_duplicates():
    report = check_captions(DATASET["entries"], DATASET["identities"])
    by_entry = {i: {x.kind for x in report.for_entry(i)} for i in range(len(DATASET["entries"]))}
    assert by_entry[0] == {"near_duplicate"}  # 0 and 4 differ only by a hyphen
    assert by_entry[4] == {"near_duplicate"}
    assert by_entry[1] == {"trait", "gender", "reference_conflict"}
    assert by_entry[2] == {"vague_motion", "too_short"}
    assert by_entry[3] == {"names_other_identity"}
    assert by_entry[5] == set()
    assert report.flagged_entries == [1, 2, 3]  # near-duplicates are listed, not flagged
    conflict = next(i for i in report.for_entry(1) if i.kind == "reference_conflict")
    assert conflict.severity == "error" and "red hair" in conflict.message
    d = report.to_dict()
    assert d["counts"]["near_duplicate"] == 2 and d["flagged_entries"] == [1, 2, 3]
    assert "| 1 | error | reference_conflict |" in report.to_markdown()


def test_clean_dataset_writes_atomically_with_report(tmp_path: Path):
    src_dir, out_dir = tmp_path / "data", tmp_path / "out"
    src_dir.mkdir()
    src = src_dir / "dataset.json"
    src.write_text(json.dumps(DATASET), encoding="utf-8")
    out = out_dir / "dataset_clean.json"
    report = clean_dataset(src, out)
    cleaned = json.loads(out.read_text(encoding="utf-8"))
    captions = [e["caption"] for e in cleaned["entries"]]
    assert captions[1] == "A person speaks in a bright blue room, close-up."
    assert captions[3] == "The person nods in a dim teal room, medium shot."
    assert captions[0] == CLEAN[0] and captions[5] == CLEAN[2]
    # media paths still point at the same files from the new folder
    assert cleaned["entries"][0]["video_path"] == "../data/clips/ava_000.mp4"
    assert cleaned["identities"] == DATASET["identities"]
    assert report.before.flagged_entries == [1, 2, 3]
    assert report.after.flagged_entries == [2]  # vague motion needs a person
    assert [c["entry"] for c in report.changes] == [1, 3]
    md = report.report_path.read_text(encoding="utf-8")
    assert report.report_path == out_dir / "dataset_clean.captions.md"
    assert "| 1 | A woman with red hair" in md and "Still needs a person" in md
    assert report.to_dict()["after"]["flagged_entries"] == [2]
    # atomic: no temp files left beside the outputs, the source untouched
    assert sorted(p.name for p in out_dir.iterdir()) == ["dataset_clean.captions.md", "dataset_clean.json"]
    assert json.loads(src.read_text(encoding="utf-8")) == DATASET


def test_clean_dataset_failure_leaves_previous_output(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"entries": [{"caption": 3}]}', encoding="utf-8")
    out = tmp_path / "out.json"
    out.write_text("previous", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: entries\[0\].caption"):
        clean_dataset(bad, out)
    assert out.read_text(encoding="utf-8") == "previous"


def test_rules_table_is_extensible(tmp_path: Path):
    extra = tmp_path / "extra.tsv"
    extra.write_text(
        "kind\tpattern\tmessage\tsuggestion\ntrait\ttattoo(?:ed|s)?\tdescribes a tattoo\tdrop it\n", encoding="utf-8"
    )
    rules = load_rules(extra)
    text = "A person with tattoos nods in a dim room, close-up."
    assert [i.match for i in check_caption(text, rules)] == ["tattoos"]
    assert suggest_rewrite(text, rules) == "A person nods in a dim room, close-up."
    broken = tmp_path / "broken.tsv"
    broken.write_text("kind\tpattern\tmessage\tsuggestion\nshape\tx\ty\tz\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.tsv: rule 2: kind 'shape'"):
        load_rules(broken)


def test_cli_captions(tmp_path: Path, capsys):
    from ltxic.cli import main

    src = tmp_path / "dataset.json"
    src.write_text(json.dumps(DATASET), encoding="utf-8")
    assert main(["captions", str(src)]) == 0
    out = capsys.readouterr().out
    assert "reference_conflict" in out and "3 of 6 captions flagged" in out
    assert main(["captions", str(src), "--strict"]) == 1
    capsys.readouterr()
    assert main(["captions", str(src), "--write-clean", str(tmp_path / "clean.json")]) == 0
    assert "Flagged captions: 3 before, 1 after" in capsys.readouterr().out
    assert (tmp_path / "clean.json").is_file()


@pytest.mark.parametrize(
    "trait",
    [  # the toy world's trait vocabulary (ltxic.toy.identity) in the phrasings a caption would use
        "porcelain skin", "beige skin", "deep skin", "dark brown skin", "tan skin",
        "auburn hair", "platinum hair", "long grey hair", "short dark brown hair", "blonde hair in a bun",
        "close-set blue eyes", "wide-set amber eyes", "evenly set green eyes",
        "a round face", "a long face", "a low-pitched voice", "a high-pitched voice", "bald",
    ],
)
def test_toy_trait_vocabulary_is_flagged_and_removed(trait):
    text = f"A person with {trait} nods in a dim green room, close-up."
    assert "trait" in kinds(text), text
    assert suggest_rewrite(text) == "A person nods in a dim green room, close-up."


def test_every_toy_identity_description_part_is_flagged():
    from ltxic.toy.make_samples import random_identities

    for identity in random_identities(24, seed=3):
        for part in identity.describe().split(", "):
            text = f"A person with {part} nods in a dim green room, close-up."
            assert "trait" in kinds(text), (identity.name, part)
