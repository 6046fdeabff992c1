"""Training checkpoints: written atomically, found again after a crash, resumed exactly.

Layout (``output_dir/checkpoints/``)::

    step_000500/lora.safetensors      the LoRA (ComfyUI-loadable, with metadata), written by the caller's ``save_lora``
    step_000500/training_state.pt     optimizer, scheduler, step, data order, RNG states, trainable weights
    step_000500/manifest.json         sizes and sha256 of the two files (detects truncation)
    latest                            the name of the newest complete checkpoint, written last

Each checkpoint is written into a temp folder that is renamed into place only when complete; the training state
holds tensors and plain numbers only, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltxic.io.errors import free_bytes, human_bytes, is_write_failure
from ltxic.io.files import DiskFullError, atomic_path, sha256_file, write_json_atomic

CHECKPOINTS = "checkpoints"
LATEST = "latest"
LORA_FILE = "lora.safetensors"
STATE_FILE = "training_state.pt"
MANIFEST_FILE = "manifest.json"
_TMP_PREFIX = ".tmp-"

SaveLoraFn = Callable[[torch.nn.Module, Path, dict[str, str]], Any]


def rng_state() -> dict[str, Any]:
    """Every RNG state, as tensors and plain numbers (loadable with ``torch.load(weights_only=True)``)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss if py_gauss is None else float(py_gauss)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_bytes(model: torch.nn.Module, state: Any) -> int:
    """Roughly the bytes one checkpoint takes: the training state's tensors plus the trainable weights (the LoRA)."""
    def size(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(size(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(size(v) for v in obj)
        return 0
    lora = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return size(state) + lora


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_is_complete(folder: Path) -> bool:
    """True when ``folder`` holds both files with the sizes and hashes its manifest records."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        for name, info in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
                return False
        return {LORA_FILE, STATE_FILE} <= set(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every checkpoint folder (complete or not), oldest first; temp folders excluded."""
    root = Path(output_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and child.name.startswith("step_") and child.name[5:].isdigit():
                found.append((int(child.name[5:]), child))
    return sorted(found)


def validation_clips(output_dir: str | os.PathLike[str]) -> dict[int, list[Path]]:
    """``step -> [validation mp4s]`` of a run (``output_dir/validation/step_NNNNNN/*.mp4``), steps ascending."""
    root = Path(output_dir) / "validation"
    found: dict[int, list[Path]] = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            clips = sorted(child.glob("*.mp4")) if child.is_dir() and child.name.startswith("step_") else []
            if clips and child.name[5:].isdigit():
                found[int(child.name[5:])] = clips
    return dict(sorted(found.items()))


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The newest *complete* checkpoint; half-written or damaged ones are skipped with a warning."""
    for step, folder in reversed(list_checkpoints(output_dir)):
        if checkpoint_is_complete(folder):
            return folder
        warnings.warn(f"{folder}: incomplete or damaged checkpoint (manifest does not match its files); skipping it", stacklevel=2)
    return None


def save_checkpoint(
    output_dir: Path,
    step: int,
    model: torch.nn.Module,
    state: dict[str, Any],
    save_lora: SaveLoraFn,
    lora_metadata: dict[str, str],
    keep_last_n: int,
) -> Path:
    """Write checkpoint ``step`` into a temp folder, rename it into place, then update ``latest`` and prune.

    A full disk raises :class:`DiskFullError` and leaves every earlier checkpoint as it was.
    """
    root = output_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f"{_TMP_PREFIX}{checkpoint_name(step)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_lora(model, tmp / LORA_FILE, {**lora_metadata, "ltxic_step": str(step)})
        torch.save(state, tmp / STATE_FILE)
        files = {}
        for name in (LORA_FILE, STATE_FILE):
            path = tmp / name
            with path.open("rb+") as fh:
                os.fsync(fh.fileno())
            files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        write_json_atomic(tmp / MANIFEST_FILE, {"step": step, "files": files})
        _fsync_dir(tmp)
        if final.exists():  # a damaged folder of the same step (found at resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, Exception) and is_write_failure(err):
            previous = latest_checkpoint(output_dir)
            raise DiskFullError(
                errno.ENOSPC,
                f"{root}: disk full while writing checkpoint step {step} "
                f"({human_bytes(free_bytes(root) or 0)} free, about {human_bytes(checkpoint_bytes(model, state))} needed). "
                f"The previous checkpoint is intact: {previous if previous else 'none was written yet'}. "
                "Free some space, lower output.keep_last_n, or set output.dir to a disk with room, "
                "then run again with --resume.",
            ) from err
        raise
    with atomic_path(root / LATEST) as tmp_pointer:
        tmp_pointer.write_text(final.name + "\n")
    _prune(output_dir, keep_last_n)
    return final


def _prune(output_dir: Path, keep_last_n: int) -> None:
    root = output_dir / CHECKPOINTS
    for child in root.iterdir():  # temp folders of crashed writers (not ours: ours was renamed)
        if child.name.startswith(_TMP_PREFIX):
            shutil.rmtree(child, ignore_errors=True)
    if keep_last_n > 0:
        for _, folder in list_checkpoints(output_dir)[:-keep_last_n]:
            shutil.rmtree(folder, ignore_errors=True)


def load_training_state(folder: Path) -> dict[str, Any]:
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
