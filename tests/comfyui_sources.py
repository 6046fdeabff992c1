"""Where the real-ComfyUI tests find ComfyUI's source, and the ONE place its pinned versions are written.

ComfyUI's core is not on PyPI, so the tests run it from a source folder:

* ``LTXIC_COMFYUI_DIR`` when set, else ``../shared/comfyui/ComfyUI`` beside the checkout (where CI has it, read-only);
  with neither, the tests are skipped with :data:`SKIP_REASON`.
* ComfyUI-LTXVideo: ``LTXIC_COMFYUI_LTXVIDEO_DIR`` when set, else ``custom_nodes/ComfyUI-LTXVideo`` in that folder.

With ComfyUI's core alone, the tests that need only the core run (checkpoint, video and audio VAE in ComfyUI's loaders,
the LoRA through ``LoraLoaderModelOnly``, the core nodes' definitions, the UI form's core nodes); the IC-LoRA loader
and guide, their node definitions and the render of the exported workflow need the node pack, put at
``<ComfyUI>/custom_nodes/ComfyUI-LTXVideo`` (or named by ``LTXIC_COMFYUI_LTXVIDEO_DIR``), and are skipped without it
(:func:`no_pack_reason`).

A folder at another version fails the tests (it is not skipped): ComfyUI's ``comfyui_version.py`` and the git blob
hashes (``git hash-object``) of files the tests depend on must equal the pins below. The node pack has no git folder
and no version file, so its files' blob hashes at the pinned commit are its version."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMFYUI_DIR = ROOT.parent / "shared" / "comfyui" / "ComfyUI"

COMFYUI_REPO = "comfyanonymous/ComfyUI"
COMFYUI_COMMIT = "aa9d2fc713664e9ffe37763f4c9240c0c3eda667"  # 0.20.1, 2026-05-10
COMFYUI_VERSION = "0.20.1"
LTXVIDEO_REPO = "Lightricks/ComfyUI-LTXVideo"
LTXVIDEO_COMMIT = "229437c6b65796d6a7a63ae34be2bd5ba31fa543"  # 2026-05-11

# git blob hashes at the pinned commits of the files whose behaviour the tests check
COMFYUI_BLOBS = {
    "nodes.py": "ec66e54d718ef0e56d2ebd53ef701049a26219e5",
    "comfy_extras/nodes_lt.py": "a4c85db7792733aceb5d80da0b08ca63b6c61330",
    "comfy_extras/nodes_lt_audio.py": "2c1f63afb840168a1b0f81edf3916e227799f0ae",
    "comfy/ldm/lightricks/av_model.py": "3fb87b4a308986cce723001e85dd6610999225eb",
}
LTXVIDEO_BLOBS = {
    "__init__.py": "bb1ee5d3c15082e3a939c530ef70df9337891d87",
    "iclora.py": "33c541c65f52cb25209b803ae8e9fbf2a7b8a096",
    "nodes_registry.py": "e74120c6e8222a0f394aac9fa035e75dfa988d9b",
}

# ComfyUI's requirements the tests need importable (the test extra installs them; the web UI's three are left out)
REQUIRED_MODULES = ("aiohttp", "torchsde", "torchvision", "kornia", "comfy_aimdo", "comfy_kitchen", "alembic", "blake3",
                    "simpleeval", "spandrel")

SKIP_REASON = (f"no ComfyUI source: ComfyUI's core is not installable from PyPI; set LTXIC_COMFYUI_DIR to a checkout of "
               f"{COMFYUI_REPO} at {COMFYUI_COMMIT} with {LTXVIDEO_REPO} at {LTXVIDEO_COMMIT} in its custom_nodes/ "
               f"(or place it at {DEFAULT_COMFYUI_DIR})")


def git_blob_hash(path: Path) -> str:
    """``git hash-object`` of a file: the SHA-1 of ``blob <size>\\0<bytes>``."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def comfyui_dir() -> Path | None:
    """The ComfyUI source folder to test against, or ``None`` when there is none."""
    given = os.environ.get("LTXIC_COMFYUI_DIR")
    if given:
        return Path(given)
    return DEFAULT_COMFYUI_DIR if DEFAULT_COMFYUI_DIR.is_dir() else None


def ltxvideo_dir(comfy: Path) -> Path | None:
    """The ComfyUI-LTXVideo folder to test against, or ``None`` when there is none (its tests are skipped)."""
    given = os.environ.get("LTXIC_COMFYUI_LTXVIDEO_DIR")
    if given:
        return Path(given)
    pack = comfy / "custom_nodes" / "ComfyUI-LTXVideo"
    return pack if pack.is_dir() else None


def no_pack_reason(comfy: Path) -> str:
    return (f"no ComfyUI-LTXVideo node pack: put {LTXVIDEO_REPO} at {LTXVIDEO_COMMIT[:8]} in "
            f"{comfy / 'custom_nodes' / 'ComfyUI-LTXVideo'} (or set LTXIC_COMFYUI_LTXVIDEO_DIR); without it the "
            "IC-LoRA loader and guide, their node definitions and the render of the exported workflow are not tested")


def _mismatches(folder: Path, blobs: dict[str, str]) -> list[str]:
    out = []
    for rel, want in blobs.items():
        path = folder / rel
        got = git_blob_hash(path) if path.is_file() else "absent"
        if got != want:
            out.append(f"{path}: {got}, pinned {want}")
    return out


def problems(comfy: Path, pack: Path | None) -> list[str]:
    """Why these folders are not the pinned sources with their requirements installed (empty: they are).
    ``pack`` ``None``: no node pack (not a problem; the tests needing it are skipped)."""
    if not (comfy / "main.py").is_file() or not (comfy / "comfy" / "sd.py").is_file():
        return [f"{comfy}: not a ComfyUI source folder (no main.py / comfy/sd.py)"]
    found = re.search(r'__version__\s*=\s*"([^"]+)"', (comfy / "comfyui_version.py").read_text())
    out = []
    if (found.group(1) if found else None) != COMFYUI_VERSION:
        out.append(f"{comfy}: ComfyUI {found.group(1) if found else '?'}, pinned {COMFYUI_VERSION} ({COMFYUI_COMMIT})")
    out += _mismatches(comfy, COMFYUI_BLOBS)
    if pack is not None:
        out += [f"ComfyUI-LTXVideo is not at {LTXVIDEO_COMMIT}: {m}" for m in _mismatches(pack, LTXVIDEO_BLOBS)]
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        out.append(f"ComfyUI's requirements are not installed ({', '.join(missing)}): pip install -c constraints.txt "
                   "-e '.[test]' installs them")
    return out
