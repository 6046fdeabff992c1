"""The pin check of the real-ComfyUI tests (tests/comfyui_sources.py) refuses a source folder at another version."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import comfyui_sources


def _fake_comfyui(root: Path, version: str) -> Path:
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "comfy" / "sd.py").write_text("")
    (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    return root


def test_git_blob_hash_is_gits(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_bytes(b"print('x')\n")
    try:
        want = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git")
    assert comfyui_sources.git_blob_hash(path) == want


def test_another_version_is_refused(tmp_path: Path) -> None:
    comfy = _fake_comfyui(tmp_path / "ComfyUI", "0.19.0")
    pack = tmp_path / "ComfyUI-LTXVideo"
    pack.mkdir()
    (pack / "iclora.py").write_text("# another commit\n")
    found = "\n".join(comfyui_sources.problems(comfy, pack))
    assert "ComfyUI 0.19.0, pinned 0.20.1" in found
    assert "nodes.py: absent" in found  # a pinned file missing
    assert f"ComfyUI-LTXVideo is not at {comfyui_sources.LTXVIDEO_COMMIT}" in found and "iclora.py" in found
    assert "not a ComfyUI source folder" in "\n".join(comfyui_sources.problems(tmp_path / "empty", pack))


def test_missing_node_pack_skips_its_tests_naming_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    comfy = _fake_comfyui(tmp_path / "ComfyUI", comfyui_sources.COMFYUI_VERSION)
    monkeypatch.delenv("LTXIC_COMFYUI_LTXVIDEO_DIR", raising=False)
    assert comfyui_sources.ltxvideo_dir(comfy) is None  # absent: not a problem of the core's folder...
    assert not any("LTXVideo" in p for p in comfyui_sources.problems(comfy, None))
    reason = comfyui_sources.no_pack_reason(comfy)  # ...its tests are skipped, saying where it goes
    assert str(comfy / "custom_nodes" / "ComfyUI-LTXVideo") in reason and "LTXIC_COMFYUI_LTXVIDEO_DIR" in reason
    assert comfyui_sources.LTXVIDEO_COMMIT[:8] in reason and "render" in reason
    (comfy / "custom_nodes" / "ComfyUI-LTXVideo").mkdir(parents=True)  # present: must be the pinned one
    assert comfyui_sources.ltxvideo_dir(comfy) == comfy / "custom_nodes" / "ComfyUI-LTXVideo"
    monkeypatch.setenv("LTXIC_COMFYUI_LTXVIDEO_DIR", str(tmp_path / "nowhere"))  # named but absent: fails
    found = "\n".join(comfyui_sources.problems(comfy, comfyui_sources.ltxvideo_dir(comfy)))
    assert f"ComfyUI-LTXVideo is not at {comfyui_sources.LTXVIDEO_COMMIT}" in found and "iclora.py: absent" in found


def test_folder_beside_the_checkout_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LTXIC_COMFYUI_DIR", str(tmp_path))
    assert comfyui_sources.comfyui_dir() == tmp_path
    monkeypatch.delenv("LTXIC_COMFYUI_DIR")
    beside = comfyui_sources.DEFAULT_COMFYUI_DIR
    assert beside == comfyui_sources.ROOT.parent / "shared" / "comfyui" / "ComfyUI"
    assert comfyui_sources.comfyui_dir() == (beside if beside.is_dir() else None)
