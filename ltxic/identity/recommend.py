"""The checkpoint lesson 05 recommends, as a file the later lessons read: ``OUT/recommended_checkpoint.json``.

Lesson 05 compares every checkpoint with the base model and writes the step it keeps (``step``), that checkpoint's
LoRA file (``path``, what ``lesson_lora(lora_path=...)`` and ``generate(lora=...)`` take), its folder
(``checkpoint``), why, and the scores that decided; lesson 06 samples that file, so the step the text names and
the one sampled are the same by construction."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ltxic.io.files import write_json_atomic

RECOMMENDED_FILE = "recommended_checkpoint.json"
LORA_FILE = "lora.safetensors"  # a checkpoint folder's LoRA (ltxic.training.checkpoints writes it)


def write_recommendation(out_dir: str | os.PathLike[str], pick: Mapping[str, Any],
                         checkpoints: Sequence[tuple[int, str | os.PathLike[str]]],
                         rows: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write ``out_dir/recommended_checkpoint.json`` for ``pick`` (from ``pick_checkpoint``): ``step``, ``path``
    (``lora.safetensors`` in that step's folder, as given in ``checkpoints``), ``checkpoint`` (the folder), ``why``,
    and the chosen step's row of ``rows``."""
    folders = {int(step): Path(folder) for step, folder in checkpoints}
    step = int(pick["step"])
    if step not in folders:
        raise ValueError(f"recommended step {step} is not among the checkpoints {sorted(folders)}")
    row = next((dict(r) for r in rows if int(r.get("step", -1)) == step), None)
    data = {"step": step, "path": str(folders[step] / LORA_FILE), "checkpoint": str(folders[step]), "why": pick.get("why"),
            "scores": row}
    path = Path(out_dir) / RECOMMENDED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, json.loads(json.dumps(data, default=float)))
    return path


def read_recommendation(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recommendation lesson 05 wrote into ``out_dir`` (``step``, ``path``, ...), or None when there is none."""
    path = Path(out_dir) / RECOMMENDED_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "step" not in data or "path" not in data:
        raise ValueError(f"{path}: not a checkpoint recommendation (needs 'step' and 'path'); run lesson 05 again")
    return data
