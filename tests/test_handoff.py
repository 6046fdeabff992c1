"""Lesson 05's pick reaches lessons 06 and 07: OUT/recommended_checkpoint.json names the step, and without it (or
with one for another base, or naming a checkpoint that is gone) the newest checkpoint is sampled."""

import json
from pathlib import Path

import pytest

import ltxic
from ltxic.course.handoff import RECOMMENDED_FILE, read_recommended, recommended_lora, save_recommended
from ltxic.course.runner import CourseError, lesson_run_dir
from ltxic.models.kit import Models
from ltxic.training.checkpoints import list_checkpoints, save_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run folder with complete checkpoints at steps 100, 200 and 300, written by the trainer's writer."""
    out = tmp_path_factory.mktemp("course")
    model = ltxic.build_transformer("tiny", seed=0)
    ltxic.inject_lora(model, ltxic.LoRAConfig(rank=2, alpha=2))
    run_dir = lesson_run_dir(out, "tiny")
    for step in (100, 200, 300):
        save_checkpoint(run_dir, step, model, {"step": step}, lambda m, p, meta: ltxic.save_lora(m, p, metadata=meta),
                        {"base_model": "tiny"}, keep_last_n=0)
    return out, list_checkpoints(run_dir)


def test_the_pick_is_what_the_next_lessons_sample(run):
    out, checkpoints = run
    models = Models.tiny()
    path = save_recommended(out, {"step": 200, "why": "the earliest near the best"}, checkpoints, models.name)
    assert path == out / RECOMMENDED_FILE
    record = json.loads(path.read_text())
    assert record["step"] == 200 and not Path(record["checkpoint"]).is_absolute()  # the folder can move
    chosen = recommended_lora(out, models)
    assert chosen.step == 200 and chosen.path == dict(checkpoints)[200] / "lora.safetensors"
    assert "lesson 05" in chosen.why and "the earliest near the best" in chosen.why


def test_without_a_pick_the_newest_checkpoint(run, tmp_path):
    out, checkpoints = run
    models = Models.tiny()
    (out / RECOMMENDED_FILE).unlink(missing_ok=True)
    chosen = recommended_lora(out, models)
    assert chosen.step == 300 and "newest" in chosen.why
    # a pick for another base model is not this base's
    save_recommended(out, {"step": 100, "why": "x"}, checkpoints, "ltx-2.3-22b")
    assert recommended_lora(out, models).step == 300
    (out / RECOMMENDED_FILE).write_text("{not json")
    assert read_recommended(out) is None and recommended_lora(out, models).step == 300
    # lora_path wins over everything
    given = recommended_lora(out, models, dict(checkpoints)[100] / "lora.safetensors")
    assert given.step is None and given.path.parent.name.endswith("100")
    (out / RECOMMENDED_FILE).unlink()


def test_a_pick_outside_the_checkpoints_is_refused(run):
    out, checkpoints = run
    with pytest.raises(CourseError, match="step 250"):
        save_recommended(out, {"step": 250}, checkpoints, "tiny")
