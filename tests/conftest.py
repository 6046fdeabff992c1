"""Shared test fixtures, and how the suite shares the cores (pytest-xdist, ``-n auto --dist loadfile``: each test
file runs on one worker, so its module fixtures are built once and its tests keep their order)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Each worker compiles into its own inductor cache: two processes writing one cache have corrupted it.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"torchinductor_ltxic_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"))

import torch  # noqa: E402  (after the cache folder is set)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker a core, at most 4 (the course and a ComfyUI server are heavy; memory, not cores,
    bounds more)."""
    return max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module, restored afterwards: the tiny models gain nothing from more, and on a
    2-core machine shared with other jobs two threads made steps 10-30x slower. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_kit(tmp_path, monkeypatch):
    """Toy clips (2 identities x 2 clips, 64x64x17) and a freshly initialized tiny kit (codecs, text encoder, base)
    in a temp ``LTXIC_TINY_DIR``: a training run in seconds, independent of the shipped weights."""
    import json

    from ltxic.models.codecs import AudioCodec, VideoCodec
    from ltxic.models.transformer import build_transformer, save_transformer
    from ltxic.models.text_encoder import TextEncoder, build_vocab
    from ltxic.toy.make_samples import make_dataset, random_identities

    data = make_dataset(tmp_path / "data", random_identities(2, 0), clips_per_identity=2, width=64, height=64,
                        frames=17, progress=False)
    kit = tmp_path / "tiny"
    kit.mkdir()
    torch.manual_seed(0)
    VideoCodec().save(kit / "video_codec.safetensors")
    AudioCodec().save(kit / "audio_codec.safetensors")
    captions = [e["caption"] for e in json.loads(data.read_text())["entries"]]
    TextEncoder(vocab=build_vocab(captions)).save(kit / "text_encoder.safetensors")
    save_transformer(build_transformer("tiny", seed=0), kit / "transformer.safetensors")
    monkeypatch.setenv("LTXIC_TINY_DIR", str(kit))
    return data


@pytest.fixture(scope="session")
def executed_course(tmp_path_factory):
    """Every lesson executed once, in order, as ``ltxic course`` runs them (papermill, the CPU defaults), with the
    files they write in a temporary folder: ``{stem: (executed copy, failure message or None, parameters)}``.
    A failing lesson is recorded and the next one still runs, so each lesson's test reports its own failure.

    Under pytest-xdist the workers share one run: the first to ask builds it under a lock, the others wait and read
    its record (the course takes minutes; running it once per worker would double the suite's time)."""
    import json

    from filelock import FileLock

    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.getbasetemp().parent / "course_shared"
    else:
        root = tmp_path_factory.mktemp("course")
    record = root / "results.json"
    with FileLock(str(root) + ".lock"):
        if not record.is_file():
            root.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({stem: [str(out), err, params] for stem, (out, err, params) in _run_course(root).items()}))
    return {stem: (Path(out), err, params) for stem, (out, err, params) in json.loads(record.read_text()).items()}


def _run_course(root: Path) -> dict[str, tuple[Path, str | None, dict]]:
    from ltxic.course.runner import NOTEBOOKS_DIR, CourseError, declared_parameters, lessons, run_lesson

    # relative to the lessons' folder, as the defaults are: the outputs name no absolute path of the machine
    overrides = {"out_dir": os.path.relpath(root / "files", NOTEBOOKS_DIR),
                 "comfyui_root": os.path.relpath(root / "ComfyUI", NOTEBOOKS_DIR)}
    results = {}
    for nb in lessons():
        params = {k: v for k, v in overrides.items() if k in declared_parameters(nb)}
        try:
            run = run_lesson(nb, root / "executed", params, threads=1)  # xdist runs other tests beside it
            results[nb.stem] = (run.output, None, params)
        except CourseError as err:
            results[nb.stem] = (root / "executed" / nb.name, str(err), params)
    return results


def chromium() -> str | None:
    """The system's Chromium (Debian's ``chromium``; ``LTXIC_CHROMIUM`` names another)."""
    return os.environ.get("LTXIC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright (no browser download). Without it the test is skipped, except where
    ``LTXIC_REQUIRE_BROWSER=1`` (CI), where it fails."""
    exe = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        why = "no Chromium or Playwright: apt-get install chromium; pip install -e '.[test]' (see .ci/run)"
        if os.environ.get("LTXIC_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root in a container; autoplay: the test plays clips without a click
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()
