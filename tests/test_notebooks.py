"""The course notebooks: committed clean, and each one executes top to bottom on a CPU.

Execution goes through papermill (``ltxic.course.run_course``, the function behind ``ltxic course``) rather than
nbmake: the same code path users run, the CPU defaults of each ``parameters`` cell can be overridden the way a GPU
user would, and every executed notebook is kept for inspection. The kernel is the registered ``python3``, which
jupyter_client starts with the current interpreter (``run_course`` checks that, see ``_check_kernel``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from ltxic.course import CourseError, declared_parameters, lessons, notebook_problems, run_course

EXPECTED = ["00_setup", "01_assets", "02_dataset", "03_captions", "04_training", "05_checkpoints",
            "06_inference", "07_drift"]
LESSONS = lessons()


def test_one_lesson_per_step() -> None:
    assert [nb.stem for nb in LESSONS] == EXPECTED


@pytest.mark.parametrize("notebook", LESSONS, ids=[nb.stem for nb in LESSONS])
def test_committed_notebook_is_clean(notebook: Path) -> None:
    assert notebook_problems(notebook) == []
    # Tidy JSON as JupyterLab writes it: no execution counts anywhere, no papermill traces.
    raw = json.loads(notebook.read_text())
    assert all(c.get("execution_count") is None for c in raw["cells"] if c["cell_type"] == "code")


def test_problems_are_found(tmp_path: Path) -> None:
    nb = nbformat.read(LESSONS[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.metadata["tags"] = ["parameters"]
    code.source = "steps = 60\n"
    path = tmp_path / "00_dirty.ipynb"
    nbformat.write(nb, path)
    problems = "\n".join(notebook_problems(path))
    assert "has outputs" in problems
    assert "execution count" in problems
    assert "2 cells tagged 'parameters'" in problems
    assert "parameter steps needs a '# GPU: <value>' comment" in problems


def test_unknown_parameter_is_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(CourseError, match="no lesson among 00_setup has a parameter named stepz"):
        run_course(tmp_path, only=["00"], parameters={"stepz": 6000})
    with pytest.raises(CourseError, match="no lesson numbered 42"):
        run_course(tmp_path, only=["42"])
    assert not any(tmp_path.iterdir())


def test_failing_cell_is_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    nb = nbformat.read(LESSONS[0], as_version=4)
    nb.cells = nb.cells[:3] + [nbformat.v4.new_markdown_cell("why"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, src / "00_broken.ipynb")
    with pytest.raises(CourseError, match=r"00_broken.ipynb: cell \d+ failed with ValueError: boom"):
        run_course(tmp_path / "out", notebooks_dir=src)
    assert (tmp_path / "out" / "00_broken.ipynb").is_file()  # kept, traceback included, for the author


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", LESSONS, ids=[nb.stem for nb in LESSONS])
def test_lesson_executes_on_cpu(notebook: Path, tmp_path: Path) -> None:
    # Files a lesson writes go to the temporary folder, not into the checkout.
    overrides = {"out_dir": str(tmp_path / "files"), "comfyui_root": str(tmp_path / "ComfyUI")}
    params = {k: v for k, v in overrides.items() if k in declared_parameters(notebook)}
    (run,) = run_course(tmp_path / "out", only=[notebook.name[:2]], parameters=params)
    executed = nbformat.read(run.output, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert executed.metadata.papermill.parameters == params
    # The lesson is unchanged by running it (papermill writes only the copy).
    assert notebook_problems(notebook) == []
    shutil.rmtree(tmp_path / "out")


def test_training_lesson_defaults_match_the_helper() -> None:
    """Lessons 05-07 train lesson 04's run themselves when run alone: with the values of 04's parameters cell."""
    import ast

    from ltxic.course import TRAINING_LESSON_DEFAULTS

    nb = nbformat.read(next(p for p in LESSONS if p.stem == "04_training"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body if isinstance(n, ast.Assign)}
    assert {k: values[k] for k in TRAINING_LESSON_DEFAULTS} == TRAINING_LESSON_DEFAULTS
