"""The course book builds to HTML offline, one page per lesson notebook plus the intro."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from ltxic.course import REPO_ROOT, lessons


def _offline_prefix() -> list[str]:
    """``unshare -rn`` (a private network namespace with no interfaces) where the kernel allows it, so the build
    is proven to need no network; elsewhere the build runs as is."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def test_book_builds_offline_with_every_chapter(tmp_path: Path) -> None:
    out = tmp_path / "html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [*_offline_prefix(), sys.executable, "-m", "ltxic.cli", "book", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # warnings are errors (-W)
    intro = (out / "book" / "index.html").read_text()
    assert "Consent" in intro and "Two scales, one code path" in intro
    assert 'url=book/index.html' in (out / "index.html").read_text()
    for nb in lessons():
        page = out / "notebooks" / f"{nb.stem}.html"
        assert page.is_file(), f"no chapter page for {nb.name}"
        assert f"../notebooks/{nb.stem}.html" in intro, f"{nb.stem} missing from the table of contents"
        title = nbformat.read(nb, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        assert title.split(" · ")[-1].split(":")[0] in page.read_text()
