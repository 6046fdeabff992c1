"""The course book: HTML built offline from the executed lessons, so its pages show what the code did.

``build_book`` takes the executed copies that ``ltxic course`` wrote (``outputs/course/`` by default), runs the
lessons whose copy is missing, failed or older than the lesson's source first (and every later lesson, since
they build on each other through one output folder), and renders them with Sphinx + MyST-NB: plots and frame
strips as images, the clips of lessons 06 and 07 as ``<video>`` elements with their sound, embedded in the
page. Two pages are generated from the run and the committed results:

* the landing page's result: the picture and the table of lesson 06's cell tagged ``course-result``
  (reference, base, LoRA, their scores);
* the GPU table of the "Running on RunPod" chapter, from ``benchmarks/results/ltx23_real_path.json`` and the
  shipped configs.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltxic.course.runner import BOOK_DIR, REPO_ROOT, WORKING_FOLDER_TAG, CourseError, lessons, run_course

RESULT_TAG = "course-result"
_WIDGET = "application/vnd.jupyter.widget-view+json"
INJECTED_TAG = "injected-parameters"  # papermill's cell of the values passed with -p
GPU_BENCHMARK = REPO_ROOT / "benchmarks" / "results" / "ltx23_real_path.json"
_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)\s]+)\)")
# Calls after which a lesson promises a picture in the cell's outputs, and one promising a playable clip.
_FIGURE_CALL = re.compile(r"plt\.show\(\)|display\(\s*plot_\w+\(")
_VIDEO_CALL = re.compile(r"video_player\(")
_AUDIO_CALL = re.compile(r"audio_player\(")

__all__ = ["RESULT_TAG", "build_book", "ensure_executed", "executed_copy_problems", "gpu_run_table", "output_problems"]


def _added_by_run(cell: Any) -> bool:
    """papermill's cell of the parameters passed, or the working-folder cell ``run_lesson`` puts in a copy."""
    return bool({INJECTED_TAG, WORKING_FOLDER_TAG} & set(cell.metadata.get("tags", [])))


def _code_sources(nb: Any) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and not _added_by_run(c)]


def executed_copy_problems(executed: str | Path, lesson: str | Path) -> list[str]:
    """Why ``executed`` does not stand for ``lesson`` in the book (empty when it does): missing, not a papermill
    run, a cell that failed or did not run, or code that differs from the lesson's current source."""
    import nbformat

    executed, lesson = Path(executed), Path(lesson)
    if not executed.is_file():
        return [f"{executed}: no executed copy of {lesson.name}"]
    nb = nbformat.read(executed, as_version=4)
    if "papermill" not in nb.metadata:
        return [f"{executed}: not an executed copy (no metadata.papermill); run `ltxic course`"]
    problems = []
    if _code_sources(nb) != _code_sources(nbformat.read(lesson, as_version=4)):
        problems.append(f"{executed}: its code differs from {lesson} (the lesson changed since it ran)")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or WORKING_FOLDER_TAG in cell.metadata.get("tags", []):
            continue
        if any(o.output_type == "error" for o in cell.outputs):
            problems.append(f"{executed}: cell {i} failed")
        elif cell.execution_count is None:
            problems.append(f"{executed}: cell {i} did not run")
    return problems


def output_problems(executed: str | Path) -> list[str]:
    """What an executed lesson promised and did not show: every cell that plots (``plt.show()``,
    ``display(plot_...)``) has a PNG, none shows a figure as its text repr (``<Figure size ...>``), every
    ``video_player`` cell has an embedded mp4 and every ``audio_player`` cell an embedded sound."""
    import nbformat

    path = Path(executed)
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        rich = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        pngs = [o for o in rich if "image/png" in o.data]
        html = "".join(str(o.data.get("text/html", "")) for o in rich)
        where = f"{path.name} cell {i}"
        for o in rich:
            if set(o.data) == {"text/plain"} and str(o.data["text/plain"]).startswith("<Figure size"):
                problems.append(f"{where}: a figure shown as text ({o.data['text/plain']}), not as an image")
        if _FIGURE_CALL.search(cell.source) and not pngs:
            problems.append(f"{where}: plots, but has no image output")
        if _VIDEO_CALL.search(cell.source) and not re.search(r"<video[^>]*>.*?data:video/mp4;base64,", html, re.S):
            problems.append(f"{where}: shows a clip, but has no embedded mp4 <video>")
        if _AUDIO_CALL.search(cell.source) and not re.search(r"<audio[^>]*>.*?data:audio/[\w-]+;base64,", html, re.S):
            problems.append(f"{where}: plays a sound, but has no embedded <audio>")
    return problems


def ensure_executed(executed_dir: str | Path, *, execute: bool = True, notebooks_dir: str | Path | None = None) -> list[Path]:
    """The executed copy of every lesson in ``executed_dir``, running the first stale lesson and all after it
    (with their defaults, as ``ltxic course --only ...``) when ``execute``; else a stale copy raises."""
    executed_dir = Path(executed_dir)
    todo = lessons(notebooks_dir)
    stale = [nb for nb in todo if executed_copy_problems(executed_dir / nb.name, nb)]
    if stale:
        first = todo.index(stale[0])
        if not execute:
            why = "; ".join(p for nb in stale for p in executed_copy_problems(executed_dir / nb.name, nb))
            raise CourseError(f"{executed_dir}: {why}. Run `ltxic course --out {executed_dir}`, or build with execution on")
        run_course(executed_dir, only=[nb.name[:2] for nb in todo[first:]], notebooks_dir=notebooks_dir)
    return [executed_dir / nb.name for nb in todo]


# ----------------------------------------------------------------------------------------------- generated pages
def _result_page(lesson_06: Path, images: Path) -> str:
    """The landing page's result: the picture and the table of lesson 06's ``course-result`` cell."""
    import nbformat

    nb = nbformat.read(lesson_06, as_version=4)
    cell = next((c for c in nb.cells if RESULT_TAG in c.metadata.get("tags", [])), None)
    outputs = [o for o in (cell.outputs if cell is not None else []) if o.output_type in ("display_data", "execute_result")]
    png = next((o.data["image/png"] for o in outputs if "image/png" in o.data), None)
    table = next((str(o.data["text/markdown"]) for o in outputs if "text/markdown" in o.data), None)
    if png is None or table is None:
        return (f"This run's `{lesson_06.name}` has no identity comparison (it is computed on the tiny scale only; "
                f"a run on LTX-2.3 is compared by eye and ear in the lesson).\n")
    images.mkdir(parents=True, exist_ok=True)
    (images / "course_result.png").write_bytes(base64.b64decode(png))
    ran = nb.metadata.get("papermill", {}).get("end_time", "")
    when = f", executed {ran[:16].replace('T', ' ')} UTC" if ran else ""
    return (f"```{{figure}} {images.name}/course_result.png\n:alt: the reference, then frames of the base from text "
            f"alone, the base with the references (LoRA strength 0) and the IC-LoRA\n:name: course-result\n\n"
            f"The held-out identity's reference and what each way of sampling made of it (lesson 06 of this "
            f"run{when}).\n```\n\n{table}\n")


def gpu_run_table(results: str | Path = GPU_BENCHMARK, configs: Sequence[str] = ("ltx23_24gb", "ltx23_h100")) -> str:
    """A markdown table per shipped LTX-2.3 config: the GPU memory it needs (measured step peak), the measured
    seconds per step and per two-stage clip, and the time of the config's full run (its ``optimization.steps``
    at the measured step time), from the committed GPU benchmark."""
    from ltxic.training.config import example_config, load_config

    data = json.loads(Path(results).read_text())
    runs = {v["config"]: v for v in data.values() if isinstance(v, dict) and "config" in v and "train" in v}
    lines = ["| config | card | measured step peak | s/step (measured) | bucket | steps | training time | two-stage clip |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name in configs:
        if name not in runs:
            raise CourseError(f"{results}: no run of config {name!r} (sections with 'config': {sorted(runs)})")
        run, cfg = runs[name], load_config(example_config(name), check_files=False)
        train = run["train"]
        steps = cfg.optimization.steps
        hours = steps * train["step_seconds_median"] / 3600
        card = "24 GB (48 GB: same config)" if run.get("cap_gib") else "80 GB"
        lines.append(f"| `{name}` | {card} | {train['step_peak_gib']:.1f} GiB | {train['step_seconds_median']:.2f} | "
                     f"{cfg.dataset.resolution_buckets[0]} | {steps} | {hours:.1f} h | "
                     f"{run['sample_seconds']:.0f} s at {run['sample_size']} |")
    return "\n".join(lines) + f"\n\nMeasured on {data['machine']}: {data['what']}\n"


# ----------------------------------------------------------------------------------------------- the build
def _stage(source: Path, executed: list[Path]) -> None:
    """The Sphinx source tree: ``book/`` (pages and generated fragments) and ``notebooks/``: the executed copies,
    with the Colab badge as a plain link (its image lives on the web and the book is offline) and progress-bar
    widgets as their text (a widget needs JavaScript from a CDN, and its state is not saved anyway)."""
    import nbformat

    shutil.copytree(BOOK_DIR, source / "book", ignore=shutil.ignore_patterns("_build", "conf.py"))
    (source / "notebooks").mkdir()
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)
        nb.cells = [c for c in nb.cells if WORKING_FOLDER_TAG not in c.metadata.get("tags", [])]
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _BADGE.sub(r"[Open this lesson in Colab](\1)", cell.source)
            for output in cell.get("outputs", []):
                if "data" in output and "text/plain" in output.data:
                    output.data.pop(_WIDGET, None)
        nbformat.write(nb, source / "notebooks" / path.name)
    generated = source / "book" / "_generated"
    generated.mkdir()
    lesson_06 = next(p for p in executed if p.name.startswith("06_"))
    (generated / "course_result.md").write_text(_result_page(lesson_06, generated))
    (generated / "gpu_runs.md").write_text(gpu_run_table())


def build_book(out: str | Path = "book/_build/html", executed: str | Path = "outputs/course", *, execute: bool = True,
               quiet: bool = True) -> Path:
    """Build the course book to HTML (offline) from the executed lessons in ``executed``: the course run's output
    folder, stale or missing lessons run first when ``execute`` (see :func:`ensure_executed`)."""
    from sphinx.cmd.build import build_main

    copies = ensure_executed(executed, execute=execute)
    problems = [p for nb in copies for p in output_problems(nb)]
    if problems:
        raise CourseError("the executed lessons miss outputs the book shows:\n" + "\n".join(problems))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ltxic-book-") as tmp:
        source = Path(tmp)
        _stage(source, copies)
        # -c: the committed conf.py, reading the staged tree (book/ and notebooks/)
        args = ["-b", "html", "-c", str(BOOK_DIR), "-W", "--keep-going", "-d", str(source / ".doctrees"), str(source), str(out)]
        if quiet:
            args.insert(0, "-q")
        code = build_main(args)
    if code != 0:
        raise CourseError(f"the book build failed (sphinx exit {code}); the warnings above name the file and line")
    return out
