"""The checkpoint lesson 05 recommends, handed to lessons 06 and 07 through one file in the course's output folder.

Lesson 05 scores every checkpoint and picks one (:func:`ltxic.identity.metrics.pick_checkpoint`); it writes
``OUT/recommended_checkpoint.json`` with :func:`save_recommended`. Lessons 06 and 07 sample that checkpoint
(:func:`recommended_lora`), so the step the text recommends is the step the later lessons show. Run alone, without
the file (or with a file for another base model, or naming a checkpoint that is gone), they fall back to the newest
checkpoint of lesson 04's run and say so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltxic.course.runner import CourseError, lesson_lora
from ltxic.io.files import write_json_atomic

RECOMMENDED_FILE = "recommended_checkpoint.json"


@dataclass(frozen=True)
class ChosenLoRA:
    """The LoRA a lesson samples, the step it comes from (``None`` for a ``lora_path`` given by hand) and why."""

    path: Path
    step: int | None
    why: str


def save_recommended(out_dir: str | Path, pick: Mapping[str, Any], checkpoints: Sequence[tuple[int, Path]],
                     base_model: str) -> Path:
    """Write lesson 05's pick (``{"step", "why", ...}``) to ``out_dir/recommended_checkpoint.json``: the step, the
    checkpoint folder relative to ``out_dir`` (the folder may move as a whole), the base model and the reason."""
    folders = dict(checkpoints)
    step = int(pick["step"])
    if step not in folders:
        raise CourseError(f"the pick names step {step}, which is not among the checkpoints {sorted(folders)}")
    out = Path(out_dir)
    folder = Path(folders[step])
    try:
        where = str(folder.resolve().relative_to(out.resolve()))
    except ValueError:  # a run outside out_dir keeps its absolute path
        where = str(folder.resolve())
    record = {"step": step, "checkpoint": where, "base_model": base_model, "why": str(pick.get("why", ""))}
    return write_json_atomic(out / RECOMMENDED_FILE, record)


def read_recommended(out_dir: str | Path) -> dict[str, Any] | None:
    """The record :func:`save_recommended` wrote, or ``None`` when there is none (or it cannot be read)."""
    path = Path(out_dir) / RECOMMENDED_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "step" in record and "checkpoint" in record else None


def recommended_lora(out_dir: str | Path, models: Any, lora_path: str | Path | None = None) -> ChosenLoRA:
    """The LoRA lessons 06 and 07 sample: ``lora_path`` when given; else the checkpoint lesson 05 recommended for this
    base model; else (lesson 05 not run, or its pick gone) lesson 04's newest checkpoint
    (:func:`ltxic.course.runner.lesson_lora`, which trains the tiny run first when it is missing)."""
    if lora_path is not None:
        return ChosenLoRA(lesson_lora(out_dir, models, lora_path), None, "the lora_path parameter")
    record = read_recommended(out_dir)
    if record is not None and record.get("base_model") == models.name:
        folder = Path(record["checkpoint"])
        lora = (folder if folder.is_absolute() else Path(out_dir) / folder) / "lora.safetensors"
        if lora.is_file():
            return ChosenLoRA(lesson_lora(out_dir, models, lora), int(record["step"]),
                              f"lesson 05's pick ({RECOMMENDED_FILE}): {record.get('why', '')}")
    from ltxic.models.lora import read_lora_metadata

    path = lesson_lora(out_dir, models, None)
    step = read_lora_metadata(path).get("ltxic_step")
    folder_step = path.parent.name.rpartition("_")[2]
    found = int(step) if step and str(step).isdigit() else (int(folder_step) if folder_step.isdigit() else None)
    return ChosenLoRA(path, found, f"no {RECOMMENDED_FILE} for base {models.name!r} in {out_dir} (lesson 05 not run): "
                                   "the newest checkpoint")


__all__ = ["RECOMMENDED_FILE", "ChosenLoRA", "read_recommended", "recommended_lora", "save_recommended"]
