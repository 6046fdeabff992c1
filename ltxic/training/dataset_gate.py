"""The dataset check before training: ``ltxic validate``'s errors stop a run before anything is cached.

A wrong-person clip or another speaker's voice costs a whole run to find afterwards. :func:`check_dataset_for_training`
runs :func:`ltxic.identity.dataset_check.validate_dataset` on the config's dataset (identity checks as ``ltxic
validate`` runs them: on for real footage, off for a synthetic dataset, unless ``dataset.identity_checks`` says) and raises :class:`DatasetValidationError`,
one line per error with its file and fix, unless the run allows them (``dataset.allow_validation_errors: true`` or
``ltxic train --allow-invalid-dataset``). Either way ``dataset_check.json`` in the output folder records what was
found and whether it was overridden.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ltxic.io.files import write_json_atomic
from ltxic.training.loop import TrainingError

CHECK_FILE = "dataset_check.json"

__all__ = ["CHECK_FILE", "DatasetCheck", "DatasetValidationError", "check_dataset_for_training"]


class DatasetValidationError(TrainingError):
    """The dataset has validation errors and the run does not allow them; the message lists each with its fix."""


@dataclass
class DatasetCheck:
    """What the check before training found, and whether the run went on regardless."""

    dataset: str
    ok: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: int = 0
    identity_checked: bool = False
    embedders: dict[str, Any] | None = None
    overridden: bool = False
    override: str | None = None  # what allowed the errors: the flag or the config field
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lines(report: Any) -> list[dict[str, Any]]:
    ds, out = report.parsed, []
    for p in report.errors:
        entry = ds.entries[p.entry] if p.entry is not None and p.entry < len(ds.entries) else None
        file = getattr(entry, p.field, None) if entry is not None and p.field in ("video_path", "reference_image",
                                                                                  "reference_audio") else None
        out.append({"entry": p.entry, "file": file, "field": p.field, "problem": p.problem, "detail": p.detail})
    return out


def check_dataset_for_training(cfg: Any, output_dir: Path, *, allow: bool = False, write: bool = True) -> DatasetCheck:
    """Validate ``cfg.dataset.dataset_file`` against the config's buckets (faces are not looked for: that check
    only warns); raise :class:`DatasetValidationError` on errors unless ``allow`` (the flag) or
    ``cfg.dataset.allow_validation_errors``. Writes ``output_dir/dataset_check.json`` when ``write``."""
    from ltxic.identity.dataset_check import validate_dataset

    start = time.perf_counter()
    path = Path(cfg.dataset.dataset_file)
    val = cfg.validation
    report = validate_dataset(path, buckets=[str(b) for b in cfg.dataset.resolution_buckets], faces=False,
                              identity=cfg.dataset.identity_checks, embedders=val.embedders, face_weights=val.face_weights, voice_weights=val.voice_weights)
    errors = _lines(report)
    override = ("ltxic train --allow-invalid-dataset" if allow else
                "dataset.allow_validation_errors: true" if cfg.dataset.allow_validation_errors else None)
    check = DatasetCheck(str(path), report.ok, errors, len(report.warnings), report.identity is not None,
                         report.embedders, overridden=bool(errors) and override is not None,
                         override=override if errors else None, seconds=round(time.perf_counter() - start, 2))
    if errors and override is None:
        items = [f"entry {e['entry'] if e['entry'] is not None else '-'}{' (' + e['file'] + ')' if e['file'] else ''}: "
                 f"{e['problem']}: {e['detail']}" for e in errors]
        # one error stays on one line (the one-line errors of every ltxic command); several are listed
        listed = f" {items[0]}." if len(items) == 1 else "\n" + "\n".join(f"  - {item}" for item in items) + "\n"
        raise DatasetValidationError(
            f"{path}: {len(errors)} validation error(s); refusing to train on it (nothing was cached or trained):"
            f"{listed} Fix each as it says (the full report: ltxic validate {path}), or train anyway with "
            f"--allow-invalid-dataset (or dataset.allow_validation_errors: true); the run then records the errors it "
            f"overrode in {Path(output_dir) / CHECK_FILE}.")
    if write:  # only for a run that goes on: a refused one leaves no file behind
        write_json_atomic(Path(output_dir) / CHECK_FILE, check.to_dict())
    return check
