"""Every lesson opens in Colab (badge) and starts with the same setup cell: on Colab it installs ltxic and the
course's data; anywhere else it changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from ltxic.course.runner import BOOK_DIR, COURSE_REPOSITORY, REPO_ROOT, gpu_config, lessons, notebook_setup

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


def test_every_repository_link_is_the_one_constant() -> None:
    """The course's repository is named once (``ltxic.course.runner.COURSE_REPOSITORY``): every Colab badge, every
    setup cell's install and every clone command in the docs use it (notebooks/README.md says how to change it)."""
    # a badge's target, a pip install from git, a clone (links to other projects' sources are not the course's)
    url = re.compile(r"(?:colab\.research\.google\.com/github/|git\+https://github\.com/|git clone https://github\.com/)"
                     r"([\w.-]+/[\w.-]+)")
    slug = COURSE_REPOSITORY.removeprefix("https://github.com/")
    docs = [REPO_ROOT / "README.md", REPO_ROOT / "notebooks" / "README.md", *sorted(BOOK_DIR.glob("*.md"))]
    texts = {str(p.relative_to(REPO_ROOT)): p.read_text() for p in [*docs, *LESSONS]}
    found = {(name, m.group(1).removesuffix(".git").split("/blob")[0]) for name, text in texts.items()
             for m in url.finditer(text)}
    assert {name for name, _ in found} >= {f"notebooks/{nb.name}" for nb in LESSONS} | {"book/runpod.md"}
    assert {(name, s) for name, s in found if s != slug} == set(), f"links to another repository than {COURSE_REPOSITORY}"


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


@pytest.mark.notebooks
def test_executed_copy_reruns_where_it_lies(executed_course, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An executed copy runs again from its own folder (as JupyterLab opens it there): its first code cell makes the
    folder the lesson ran in the working folder, so ``../data_samples`` resolves; without that cell it does not."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from ltxic.course.runner import WORKING_FOLDER_TAG

    copy, failure, _ = executed_course["03_captions"]
    assert failure is None, failure
    nb = nbformat.read(copy, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert WORKING_FOLDER_TAG in first.metadata.tags
    assert re.search(r'working_folder\("\.\./[^"]*"\)', first.source), "a path relative to the copy's folder"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    run = dict(kernel_name="python3", cwd=str(copy.parent), progress_bar=False, log_output=False, execution_timeout=300)
    again = papermill.execute_notebook(str(copy), str(tmp_path / "again.ipynb"), **run)
    assert not [o for c in again.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    nb.cells.remove(first)
    nbformat.write(nb, tmp_path / "unanchored.ipynb")
    with pytest.raises(PapermillExecutionError, match="data_samples"):
        papermill.execute_notebook(str(tmp_path / "unanchored.ipynb"), str(tmp_path / "unanchored_out.ipynb"), **run)


def test_lesson_kernels_talk_over_local_sockets(tmp_path: Path) -> None:
    """``ltxic course`` starts its kernels with IPC transport: over TCP, ipykernel writes a warning about unencrypted
    traffic into every run's output (the default manager shows it, so the check can fail)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    code = ("import sys, papermill; from ltxic.course.runner import local_kernel_manager; kw = {} if sys.argv[1] == 'tcp' "
            "else {'kernel_manager_class': local_kernel_manager()}; papermill.execute_notebook(sys.argv[2], sys.argv[3], "
            "kernel_name='python3', progress_bar=False, **kw)")
    stderr = {}
    for transport in ("tcp", "ipc"):
        out = tmp_path / f"{transport}.ipynb"
        run = subprocess.run([sys.executable, "-c", code, transport, str(tmp_path / "in.ipynb"), str(out)],
                             capture_output=True, text=True, check=True, timeout=120)
        stderr[transport] = run.stderr
        assert nbformat.read(out, as_version=4).cells[0].outputs[0]["text"] == "42\n"
    assert "running over TCP" in stderr["tcp"] and "running over TCP" not in stderr["ipc"]
