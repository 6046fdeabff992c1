"""Run the course: execute the lesson notebooks in order with papermill, check them; the helpers lessons call.

``run_course(out)`` is what ``ltxic course`` and ``tests/test_notebooks.py`` call. Each lesson runs in a fresh
kernel with the notebook's folder as working directory (as in JupyterLab) and is written, outputs included,
to ``out/NN_name.ipynb``. The committed notebooks carry the CPU-sized parameters; pass ``parameters`` to
override them (the GPU values are written beside each default in the notebook's ``parameters`` cell). The book
built from those copies is :mod:`ltxic.course.book`.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A repository checkout (``pip install -e .``) keeps the notebooks next to the package.
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"
PARAMETERS_TAG = "parameters"
#: The cell ``run_lesson`` puts at the top of an executed copy, so the copy runs again from the folder it lies in.
WORKING_FOLDER_TAG = "ltxic-working-folder"
KERNEL_NAME = "python3"
_LESSON_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


class CourseError(RuntimeError):
    """A lesson could not be found or run; the message names the notebook and what to do."""


@dataclass(frozen=True)
class LessonRun:
    notebook: Path
    output: Path
    seconds: float


def lessons(notebooks_dir: str | Path | None = None, only: Sequence[str] | None = None) -> list[Path]:
    """The lesson notebooks ``NN_name.ipynb`` in order; ``only`` keeps those whose number is listed ("04")."""
    folder = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    if not folder.is_dir():
        raise CourseError(f"{folder}: no notebooks folder. Run from a repository checkout (pip install -e .) "
                          f"or pass notebooks_dir / --notebooks.")
    found = sorted(p for p in folder.glob("*.ipynb") if _LESSON_NAME.match(p.name))
    if only:
        wanted = {str(n).zfill(2) for n in only}
        numbers = {p.name[:2] for p in found}
        missing = sorted(wanted - numbers)
        if missing:
            raise CourseError(f"{folder}: no lesson numbered {', '.join(missing)}; lessons are "
                              f"{', '.join(sorted(numbers))}")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def _parameter_assignments(notebook: str | Path) -> list[tuple[str, str, ast.expr | None]]:
    """:func:`_assignments` of the lesson's ``parameters`` cell."""
    import nbformat

    nb = nbformat.read(Path(notebook), as_version=4)
    return [a for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", []) for a in _assignments(c.source)]


def declared_parameters(notebook: str | Path) -> list[str]:
    """Names assigned in the lesson's ``parameters`` cell, in order."""
    return [name for name, _, _ in _parameter_assignments(notebook)]


def parameter_defaults(notebook: str | Path) -> dict[str, Any]:
    """The literal values the lesson's ``parameters`` cell assigns (a value that is not a literal is left out)."""
    out: dict[str, Any] = {}
    for name, _, value in _parameter_assignments(notebook):
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, TypeError):
            pass
    return out


def _check_kernel(kernel_name: str) -> None:
    """Fail early when the kernel would run another Python than this one (the lessons import ``ltxic``)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as err:
        raise CourseError(f"no Jupyter kernel {kernel_name!r}. Fix: {sys.executable} -m pip install ipykernel "
                          f"(it registers 'python3' for this environment)") from err
    exe = spec.argv[0] if spec.argv else ""
    # jupyter_client starts a bare "python" / "python3" / "python3.X" with the current interpreter.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if exe not in bare and Path(exe).resolve() != Path(sys.executable).resolve():
        raise CourseError(f"Jupyter kernel {kernel_name!r} runs {exe}, not this Python ({sys.executable}), so the "
                          f"lessons would not see this environment's ltxic. Fix: {sys.executable} -m ipykernel "
                          f"install --sys-prefix, or pass kernel_name / --kernel.")


def run_lesson(
    notebook: str | Path,
    out_dir: str | Path,
    parameters: dict[str, Any] | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: int = 900,
    threads: int | None = None,
) -> LessonRun:
    """Execute one lesson with papermill into ``out_dir`` (also the lesson's ``out_dir`` unless ``parameters`` sets
    it); a failing cell raises :class:`CourseError`.

    ``threads`` sets the kernel's CPU thread count (``OMP_NUM_THREADS``); ``None`` leaves it to the environment.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook).resolve()
    home = lesson_home(notebook)
    # The lesson's files go beside its executed copy unless ``parameters`` names an ``out_dir``: the same folder,
    # relative to where the lesson runs (``../outputs/course`` for the default), so no absolute path enters the outputs.
    # Left out where it is the lesson's own default, so a default run's executed copy has no injected cell.
    lesson_out = os.path.relpath(Path(out_dir).resolve(), home)
    parameters = dict(parameters or {})
    if lesson_out != parameter_defaults(notebook).get("out_dir"):
        parameters.setdefault("out_dir", lesson_out)
    # Only the parameters this lesson declares: papermill would inject the others as unused globals.
    declared = declared_parameters(notebook)
    parameters = {k: v for k, v in parameters.items() if k in declared}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    start = time.perf_counter()
    # The kernel inherits this environment; putting this ltxic first on its path makes the lesson import the
    # same package as the runner (also from a checkout used through PYTHONPATH=. instead of pip install -e .).
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p)}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters=parameters, kernel_name=kernel_name,
            cwd=str(home), progress_bar=False, log_output=False, execution_timeout=timeout,
            kernel_manager_class=local_kernel_manager(),
        )
    except PapermillExecutionError as err:
        raise CourseError(f"{notebook.name}: cell {err.exec_count} failed with {err.ename}: {err.evalue}. "
                          f"The executed notebook, with the traceback, is {output}") from err
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
        if output.is_file():
            set_working_folder(output, home)
    return LessonRun(notebook, output, time.perf_counter() - start)


def local_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over local (IPC) sockets instead of TCP: the kernel runs on this
    machine anyway, and over TCP ipykernel prints a warning about unencrypted traffic into every course run."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc" if os.name == "posix" else "tcp"

    return LocalKernelManager


def lesson_home(notebook: str | Path) -> Path:
    """The folder a lesson's relative paths (``../data_samples``) start from: the notebook's own folder, or for an
    executed copy the folder its working-folder cell names (:func:`set_working_folder`)."""
    import nbformat

    notebook = Path(notebook).resolve()
    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if WORKING_FOLDER_TAG in c.metadata.get("tags", [])), None)
    match = re.search(r"working_folder\(\"([^\"]*)\"\)", cell.source) if cell is not None else None
    return (notebook.parent / match.group(1)).resolve() if match else notebook.parent


def set_working_folder(copy: str | Path, home: str | Path) -> None:
    """Put (or renew) a first code cell in the executed ``copy`` that makes ``home``, the folder the lesson ran in,
    the working folder, named relative to the copy's folder: the copy then runs again from where it lies (in
    JupyterLab, or ``papermill`` with the copy's folder as working folder), as long as the two folders keep their
    places. The cell shows no output; the book leaves it out."""
    import nbformat

    copy = Path(copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells = [c for c in nb.cells if WORKING_FOLDER_TAG not in c.metadata.get("tags", [])]
    relative = Path(os.path.relpath(Path(home).resolve(), copy.parent.resolve())).as_posix()
    cell = nbformat.v4.new_code_cell(
        "# ltxic course ran this lesson in the folder below (relative to this copy): its paths start there\n"
        f"from ltxic.course.runner import working_folder\n\nworking_folder(\"{relative}\")",
        metadata={"tags": [WORKING_FOLDER_TAG]})
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, cell)
    nbformat.write(nb, copy)


_FIRST_FOLDER: Path | None = None


def working_folder(relative: str) -> Path:
    """Make ``relative`` (to the folder the kernel started in) the working folder; running it again in the same
    kernel changes nothing. The first cell of an executed copy calls it (:func:`set_working_folder`)."""
    global _FIRST_FOLDER
    if _FIRST_FOLDER is None:
        _FIRST_FOLDER = Path.cwd()
    folder = (_FIRST_FOLDER / relative).resolve()
    if not folder.is_dir():
        raise CourseError(f"{relative}: no such folder beside this copy; the lesson ran there. Open the lesson in "
                          f"notebooks/ instead, or run `ltxic course` again to write fresh copies")
    os.chdir(folder)
    return folder


def run_course(
    out: str | Path = "outputs/course",
    only: Sequence[str] | None = None,
    notebooks_dir: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    kernel_name: str = KERNEL_NAME,
    threads: int | None = None,
) -> list[LessonRun]:
    """Execute the lessons in order (a tqdm bar over lessons); stops at the first failing lesson. The lessons write
    their files into ``out`` too (:func:`run_lesson`).

    ``threads``: the kernels' CPU threads; ``None`` is :func:`course_threads` (2 on a machine without a GPU), 0
    leaves the environment's.
    """
    from ltxic.io.progress import progress as tqdm

    todo = lessons(notebooks_dir, only)
    unknown = set(parameters or {}) - {name for nb in todo for name in declared_parameters(nb)}
    if unknown:
        raise CourseError(f"no lesson among {', '.join(nb.stem for nb in todo)} has a parameter named "
                          f"{', '.join(sorted(unknown))}; see each notebook's 'parameters' cell")
    _check_kernel(kernel_name)
    runs = []
    bar = tqdm(todo, desc="course", unit="lesson")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        runs.append(run_lesson(nb, out, parameters, kernel_name, threads=course_threads(threads)))
    return runs


def course_threads(threads: int | None = None) -> int | None:
    """The CPU threads a lesson's kernel gets: ``threads`` when given (0: the environment's, ``None`` returned);
    else, on a machine without CUDA, where the course runs the tiny model, two (one on a single core): lessons run
    one at a time, and at the tiny kit's 16x16 latent grid a training step is bound by compute (2 threads: 2.8
    steps/s against 1.6 on the idle 2-core machine). More gain little on a model this small. ``None`` (no change)
    with a GPU or when ``OMP_NUM_THREADS`` is set. Run beside other work (a test suite on every core), pass 1."""
    if threads is not None:
        return threads or None
    if "OMP_NUM_THREADS" in os.environ:
        return None
    import torch

    return None if torch.cuda.is_available() else min(2, os.cpu_count() or 1)


def _assignments(source: str) -> list[tuple[str, str, ast.expr | None]]:
    """``(name, source line, value)`` of each top-level ``name = value`` in a cell (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines()
    return [(t.id, lines[node.lineno - 1], node.value) for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]


def notebook_problems(path: str | Path) -> list[str]:
    """What a committed lesson breaks of the conventions in ``notebooks/README.md`` (empty when tidy)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"not a valid notebook: {err.message}")
    if nb.metadata.get("kernelspec", {}).get("name") != KERNEL_NAME:
        problems.append(f"kernelspec name must be {KERNEL_NAME!r} (metadata.kernelspec.name)")
    if "papermill" in nb.metadata:
        problems.append("metadata.papermill present: this is an executed copy; commit the clean notebook")
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.lstrip().startswith("# "):
        problems.append("the first cell must be markdown starting with a '# ' title")
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"{len(tagged)} cells tagged {PARAMETERS_TAG!r}; exactly one is required")
    for i, cell in enumerate(cells):
        where = f"cell {i}"
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{where}: has outputs; clear them before committing (Edit > Clear Outputs of All Cells)")
        if cell.get("execution_count") is not None:
            problems.append(f"{where}: has an execution count; clear outputs before committing")
        if i == 0 or cells[i - 1].cell_type != "markdown":
            problems.append(f"{where}: a code cell must follow a markdown cell that says why")
        if not cell.source.strip():
            problems.append(f"{where}: empty code cell")
        if PARAMETERS_TAG in cell.metadata.get("tags", []):
            assigned = _assignments(cell.source)
            if not assigned:
                problems.append(f"{where}: the parameters cell assigns no 'name = value'")
            for name, line, _ in assigned:
                if "# GPU:" not in line:
                    problems.append(f"{where}: parameter {name} needs a '# GPU: <value>' comment beside it")
    return problems


# ----------------------------------------------------------------------------------------------- the lessons' run

#: The CPU-sized training run of lesson 04 (its ``parameters`` cell holds the same values; a test checks).
TRAINING_LESSON_DEFAULTS = {"steps": 300, "checkpoint_interval": 100, "validation_interval": 100, "validation_steps": 8}


def lesson_training_config(run_dir: str | Path, *, config_name: str = "tiny_cpu", steps: int = 300,
                           checkpoint_interval: int = 100, validation_interval: int = 100, validation_steps: int = 8,
                           comfyui_root: str | Path | None = None, dataset_file: str | Path | None = None,
                           overrides: dict[str, Any] | None = None, check_files: bool = True) -> Any:
    """A shipped config shortened the way lesson 04's parameters shorten it, writing into ``run_dir``.

    ``comfyui_root`` (the tree ``ltxic download --root DIR`` filled) replaces ``model.comfyui_root`` of a config that
    trains LTX-2.3 (``model.preset: ltx-2.3-22b``); the tiny config ships its weights and ignores it. ``dataset_file``
    replaces ``dataset.dataset_file``; ``overrides`` sets any other dotted field (``{"lora.rank": 64}``) and wins over
    the rest. ``None`` keeps the shipped value. The shipped LTX-2.3 configs name placeholder data
    (``data/my_subject/``), so files are checked only after the new values are in (``check_files``).
    """
    from ltxic.training.config import example_config, load_config

    cfg = load_config(example_config(config_name), check_files=False)
    values: dict[str, Any] = {
        "output.dir": str(Path(run_dir).resolve()),
        "output.checkpoint_interval": checkpoint_interval,
        "optimization.steps": steps,
        "optimization.warmup_steps": min(steps // 4, 20),
        "validation.interval": validation_interval,
        "validation.num_inference_steps": validation_steps,
    }
    if comfyui_root is not None and cfg.model.preset == "ltx-2.3-22b":
        values["model.comfyui_root"] = str(Path(comfyui_root).resolve())
    if dataset_file is not None:
        values["dataset.dataset_file"] = str(Path(dataset_file).resolve())
    values.update(overrides or {})
    return cfg.with_overrides(values, check_files=check_files)


def lesson_run_dir(out_dir: str | Path, base: str | None = "tiny") -> Path:
    """The training lesson's run folder under ``out_dir`` for a base model (a config's ``model.preset``, or
    ``Models.name``): ``04_training`` for the tiny model, ``04_training_<base>`` otherwise, so LoRAs of two bases never
    share (and never resume) one run."""
    return Path(out_dir) / ("04_training" if base in (None, "tiny") else f"04_training_{base}")


def lesson_models(comfyui_root: str | Path | None = None, **kwargs: Any) -> Any:
    """The kit lesson 06 samples with: LTX-2.3 from ``comfyui_root`` when that tree holds its checkpoint
    (``Models.from_comfyui(comfyui_root, **kwargs)``, bfloat16 on a GPU and float32 on a CPU unless ``dtype`` is
    given), else the tiny kit.

    A ``comfyui_root`` without the checkpoint (the CI value of every lesson's ``comfyui_root``, a folder lesson 01
    only plans into) falls back to the tiny kit with a printed note naming the missing file and the download command.
    """
    import torch

    from ltxic.io.tables import shown_path
    from ltxic.models.kit import Models
    from ltxic.models.ltx23 import CHECKPOINT_FILE

    if comfyui_root is None:
        return Models.tiny()
    checkpoint = Path(comfyui_root) / CHECKPOINT_FILE
    if not checkpoint.exists():
        # an expected case (a CPU run, CI), said in the cell's output as a note: a Python warning would carry the
        # kernel's temporary file path and read as a fault
        print(f"note: {shown_path(checkpoint)} is missing, so this lesson runs the tiny kit. For LTX-2.3 fetch the "
              f"files with `ltxic download --root {shown_path(comfyui_root)}` (lesson 01)")
        return Models.tiny()
    # bfloat16 is the GPU precision; a CPU runs float32 (the miniature of the files, in CI)
    kwargs.setdefault("dtype", torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    return Models.from_comfyui(comfyui_root, **kwargs)


def lesson_lora(out_dir: str | Path, models: Any, lora_path: str | Path | None = None) -> Path:
    """The IC-LoRA a later lesson samples with, trained on the same base as ``models``.

    ``lora_path`` when given (its ``base_model`` metadata must name ``models``' base); else the newest complete
    checkpoint of lesson 04's run for that base (:func:`lesson_run_dir`). The tiny run is trained first with the CPU
    defaults when it is missing (:func:`lesson_checkpoints`); an LTX-2.3 run is never started here: that is lesson 04
    on a GPU, and its absence raises :class:`CourseError` with the fix.
    """
    from ltxic.models.lora import read_lora_metadata

    if lora_path is not None:
        path = Path(lora_path)
        if not path.is_file():
            raise CourseError(f"lora_path {path}: no such file")
    else:
        path = lesson_checkpoints(lesson_run_dir(out_dir, models.name), models.name)[-1][1] / "lora.safetensors"
    base = read_lora_metadata(path).get("base_model")
    if base not in (None, models.name):
        raise CourseError(f"{path}: trained on base {base!r}, but this lesson samples with {models.name!r}; use a LoRA "
                          f"trained on {models.name} (lesson 04 with the matching config)")
    return path


def lesson_stages(run_dir: str | Path) -> Any:
    """``stages.json`` in ``run_dir`` as a :class:`~ltxic.io.tables.Table`: seconds and peak GPU memory per stage. A
    training run's (``ltxic.train``: caching with Gemma and the VAE encoders, transformer load, validation, plus the
    median step in its title) or a generation's (:func:`lesson_generate` with ``two_stage``, ``ltxic sample
    --two-stage``); ``None`` when there is none."""
    import json

    from ltxic.io.tables import Table

    path = Path(run_dir) / "stages.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    title = ""
    if data.get("steps"):
        peak = data.get("step_peak_gib")
        title = (f"{data['steps']} training steps: median {data['step_seconds_median']:.2f} s/step"
                 + (f", peak {peak:.1f} GiB" if peak is not None else " (peak memory: GPU only)"))
    rows = [{"stage": name, "seconds": round(s.get("seconds") or 0.0, 2), "calls": s.get("calls"), "peak GiB": s.get("peak_gib")}
            for name, s in data.get("stages", {}).items()]
    return Table(rows, columns=["stage", "seconds", "calls", "peak GiB"], digits=2, title=title)


def lesson_checkpoints(run_dir: str | Path, base: str = "tiny") -> list[tuple[int, Path]]:
    """``(step, folder)`` of the training lesson's complete checkpoints in ``run_dir``.

    For the tiny base, when there are none (a later lesson run on its own), the run is trained first with the CPU
    defaults, so the lessons after 04 always have a LoRA. An LTX-2.3 run is never started here (that is lesson 04 on a
    GPU): its absence raises :class:`CourseError` with the fix.
    """
    from ltxic.training.checkpoints import checkpoint_is_complete, list_checkpoints
    from ltxic.training.trainer import train

    def complete() -> list[tuple[int, Path]]:
        return [(step, folder) for step, folder in list_checkpoints(run_dir) if checkpoint_is_complete(folder)]

    if not complete():
        if base != "tiny":
            raise CourseError(f"{run_dir}: no complete checkpoint of a {base} LoRA. Run lesson 04 with "
                              f"config_name='ltx23_h100' and the same comfyui_root and out_dir, or set lora_path "
                              f"to an IC-LoRA trained on {base}")
        train(lesson_training_config(run_dir, **TRAINING_LESSON_DEFAULTS), resume=True, progress=False)
    return complete()


def lesson_generate(models: Any, prompts: Sequence[str], *, lora: str | Path | None, reference_image: str | Path,
                    reference_audio: str | Path, dataset: str | Path | None, identity: str | None, config: Any,
                    out_dir: str | Path, two_stage: bool = False) -> list[Any]:
    """Lesson 06's clips, one mp4 with audio per prompt in ``out_dir`` (seed ``config.seed + i``), as
    :class:`ltxic.sampling.generate.Generation` objects, so the lesson's previews work on either path.

    ``two_stage=False``: :func:`ltxic.generate` at ``config``'s size. ``two_stage=True`` (LTX-2.3 on a GPU):
    :class:`ltxic.sampling.pipeline.TwoStagePipeline` with the kit's spatial upscaler and distilled LoRA: stage 1 at half width
    and height with the IC-LoRA and the references (``config.steps`` steps), x2 latent upscale, stage 2 refines at
    full size; the time (and GPU peak) per stage goes to ``out_dir/stages.json``.
    """
    from ltxic.sampling.generate import generate
    from ltxic.sampling.pipeline import generate_two_stage

    run = generate_two_stage if two_stage else generate
    return run(models, list(prompts), lora=lora, reference_image=reference_image, reference_audio=reference_audio,
               dataset=dataset, identity=identity, config=config, out_dir=out_dir, progress=False)


# ----------------------------------------------------------------------------------------------- Colab, players
#: Where Colab fetches the course from (the badge of every lesson opens its notebook there).
COURSE_REPOSITORY = "https://github.com/ltxic/ltxic"
COLAB_CHECKOUT = Path("/content/ltxic")


@dataclass(frozen=True)
class NotebookSetup:
    """What a lesson's first cell found and did: on Colab or not, the actions taken, the GPU and its config."""

    colab: bool
    actions: tuple[str, ...]
    gpu: str | None
    config_name: str

    def __str__(self) -> str:
        where = "Colab" if self.colab else "not Colab: nothing to install"
        done = "; ".join(self.actions) if self.actions else "nothing changed"
        gpu = self.gpu or "no GPU (the tiny model on the CPU)"
        return f"{where} ({done}). {gpu}; config_name for lesson 04: {self.config_name!r}"


def gpu_config(total_gib: float | None) -> str:
    """The shipped config for a card of ``total_gib`` GiB: ``ltx23_h100`` from 70 GiB (80 GB cards),
    ``ltx23_24gb`` from 22 GiB (24 and 48 GB cards), else ``tiny_cpu``."""
    if total_gib is None or total_gib < 22:
        return "tiny_cpu"
    return "ltx23_h100" if total_gib >= 70 else "ltx23_24gb"


def detect_gpu() -> tuple[str | None, str]:
    """``("NAME, N GiB", config_name)`` of CUDA device 0, or ``(None, "tiny_cpu")`` without one."""
    import torch

    if not torch.cuda.is_available():
        return None, gpu_config(None)
    props = torch.cuda.get_device_properties(0)
    gib = props.total_memory / 2**30
    return f"{props.name}, {gib:.0f} GiB", gpu_config(gib)


def notebook_setup(repository: str = COURSE_REPOSITORY, checkout: str | Path = COLAB_CHECKOUT) -> NotebookSetup:
    """The first cell of every lesson, after it installed ``ltxic`` on Colab.

    Outside Colab (no ``google.colab`` module) it changes nothing: it only reports the GPU. On Colab, when the
    course's data is not beside the working folder (``../data_samples``), it clones ``repository`` into ``checkout``
    (shallow, git with an argument list) and makes ``checkout/notebooks`` the working folder, so the lessons'
    relative paths (``../data_samples/...``) resolve as in a checkout.
    """
    import subprocess

    colab = "google.colab" in sys.modules
    actions: list[str] = []
    if colab and not (Path.cwd().parent / "data_samples" / "dataset.json").is_file():
        checkout = Path(checkout)
        if not (checkout / "data_samples" / "dataset.json").is_file():
            if checkout.exists() and any(checkout.iterdir()):
                raise CourseError(f"{checkout}: exists without data_samples/dataset.json; move it away so the course "
                                  f"can be cloned there, or clone {repository} there yourself")
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", repository, str(checkout)], check=True)
            actions.append(f"cloned {repository} into {checkout}")
        os.chdir(checkout / "notebooks")
        actions.append(f"working folder {checkout / 'notebooks'}")
    gpu, config_name = detect_gpu()
    return NotebookSetup(colab, tuple(actions), gpu, config_name)


def video_player(path: str | Path, width: int | None = 520) -> Any:
    """An mp4 (with its sound) as a playable ``<video>`` embedded in the notebook, and so in the book."""
    from IPython.display import Video

    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such clip to show")
    return Video(str(path), embed=True, mimetype="video/mp4", width=width, html_attributes="controls")


def audio_player(path: str | Path) -> Any:
    """A sound file as a playable ``<audio>`` embedded in the notebook (and the book)."""
    from IPython.display import Audio

    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such sound file")
    return Audio(filename=str(path))
