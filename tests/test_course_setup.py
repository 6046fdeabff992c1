"""Every lesson opens in Colab (badge) and starts with the same setup cell: on Colab it installs ltxic and the
course's data; anywhere else it changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from ltxic.course.runner import COURSE_REPOSITORY, gpu_config, lessons, notebook_setup

LESSONS = lessons()


def _setup_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code").source


def test_every_lesson_has_the_badge_and_the_same_first_cell() -> None:
    first = _setup_cell(LESSONS[0])
    assert f"git+{COURSE_REPOSITORY}" in first and "notebook_setup()" in first
    slug = COURSE_REPOSITORY.split("github.com/")[1]
    for nb in LESSONS:
        assert _setup_cell(nb) == first, f"{nb.name}: its first code cell is not the setup cell"
        title = nbformat.read(nb, as_version=4).cells[0].source
        assert f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{nb.name})" in title


def test_setup_cell_is_a_no_op_outside_colab(tmp_path: Path) -> None:
    """The cell as IPython runs it (``%pip`` transformed), in a fresh interpreter in an empty folder, with every
    way of starting a process or leaving the folder made to fail: it prints, and nothing else happens."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(_setup_cell(LESSONS[0]))
    guard = (
        "import os, subprocess\n"
        "def _refuse(*a, **k):\n    raise AssertionError(f'the setup cell tried {a!r}')\n"
        "subprocess.Popen = subprocess.run = os.system = os.chdir = os.execv = _refuse\n"
        "def get_ipython():\n    raise AssertionError('the setup cell ran an IPython magic')\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    proc = subprocess.run([sys.executable, "-c", guard + code + "\nprint('cwd', os.getcwd())"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "not Colab: nothing to install (nothing changed)" in proc.stdout
    assert f"cwd {work}" in proc.stdout
    assert list(work.iterdir()) == []


def test_setup_on_colab_fetches_the_course_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Colab (a ``google.colab`` module) without the data beside the working folder: the course is cloned
    (here from a local repository) and its notebooks folder becomes the working folder."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "data_samples").mkdir(parents=True)
    (repo / "notebooks").mkdir()
    (repo / "data_samples" / "dataset.json").write_text("{}")
    (repo / "notebooks" / "00_setup.ipynb").write_text("{}")
    ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([git, "init", "-q", str(repo)], check=True)
    subprocess.run([git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([git, *ident, "-C", str(repo), "commit", "-q", "-m", "course"], check=True)
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    done = notebook_setup(repository=f"file://{repo}", checkout=content / "ltxic")
    assert done.colab and len(done.actions) == 2
    assert Path.cwd() == content / "ltxic" / "notebooks"
    assert (Path.cwd().parent / "data_samples" / "dataset.json").is_file()
    # run again (the next lesson): the data is there, nothing is cloned
    again = notebook_setup(repository=f"file://{repo}", checkout=content / "ltxic")
    assert again.actions == ()


def test_gpu_config_per_card() -> None:
    assert [gpu_config(g) for g in (None, 15.0, 23.6, 44.4, 79.1, 139.8)] == \
        ["tiny_cpu", "tiny_cpu", "ltx23_24gb", "ltx23_24gb", "ltx23_h100", "ltx23_h100"]
