"""An executed lesson opened in a real JupyterLab, in headless Chromium: its figures render, every widget it holds
renders as a widget view (not "Loading widget..."), and its progress bars show their final state.

JupyterLab is started with the command of the RunPod chapter (``book/runpod.md``), as root in CI: the command must
carry ``--allow-root``. The lesson is the session's executed copy (the ``executed_course`` fixture that
``tests/test_notebooks.py`` and ``tests/test_book.py`` use too). ``LTXIC_JUPYTERLAB_LESSON`` picks another lesson.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ltxic.course.runner import BOOK_DIR, REPO_ROOT

pytestmark = pytest.mark.notebooks
# 07 runs in ~20 s on a CPU, shows figures, and gets a widget (the drift window); 06 takes minutes to run
LESSON = os.environ.get("LTXIC_JUPYTERLAB_LESSON", "07_drift")
ARTIFACTS = Path(os.environ.get("LTXIC_ARTIFACTS", REPO_ROOT / "outputs" / "artifacts"))
WIDGET = "application/vnd.jupyter.widget-view+json"
COMMAND = re.compile(r"^cd \S+ && (jupyter lab .*)$", re.M)


def runpod_jupyterlab_command() -> list[str]:
    """The JupyterLab command of the RunPod chapter, as an argument list."""
    found = COMMAND.findall((BOOK_DIR / "runpod.md").read_text())
    assert len(found) == 1, f"book/runpod.md: expected one 'cd ... && jupyter lab ...' line, found {found}"
    return shlex.split(found[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab(command: list[str], root: Path, port: int, token: str, env: dict[str, str]) -> subprocess.Popen:
    """``command`` (``jupyter lab ...``) run with this Python, serving ``root`` on ``port`` of this machine only
    (its own ``--ip`` and ``--port`` replaced: traitlets refuses an option given twice)."""
    assert command[:2] == ["jupyter", "lab"]
    kept = [c for c in command[2:] if not c.startswith(("--ip", "--port"))]
    argv = [sys.executable, "-m", "jupyterlab", *kept, "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"]
    return subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited ({proc.returncode}): {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"JupyterLab did not answer {url} in {timeout:.0f} s")


def _stop(lab: subprocess.Popen) -> None:
    """Stop JupyterLab (it shuts its kernels down first); killed when that takes more than 10 s."""
    lab.terminate()
    try:
        lab.wait(timeout=10)
    except subprocess.TimeoutExpired:
        lab.kill()
        lab.wait()


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory) -> dict[str, str]:
    """Private Jupyter settings: every cell rendered (no windowing, which leaves cells out of view unrendered), and
    nothing saved."""
    settings = tmp_path_factory.mktemp("lab-settings")
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    # never write the executed copy back (other tests read it): no autosave
    docmanager = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    docmanager.parent.mkdir(parents=True)
    docmanager.write_text(json.dumps({"autosave": False}))
    return {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("lab-workspaces"))}


def test_runpod_command_runs_as_root(tmp_path: Path, lab_env: dict[str, str]) -> None:
    """As root (CI, a RunPod pod) JupyterLab refuses to start without --allow-root; the chapter's command starts."""
    command = runpod_jupyterlab_command()
    assert "--allow-root" in command
    if os.geteuid() != 0:
        pytest.skip("not root: the refusal this guards against cannot happen here")
    token = secrets.token_hex(8)
    bare = _lab([c for c in command if c != "--allow-root"], tmp_path, _free_port(), token, lab_env)
    try:
        assert bare.wait(timeout=60) != 0 and "--allow-root" in bare.stdout.read()
    finally:
        _stop(bare)


_VIEW = """() => {
  const outputs = Array.from(document.querySelectorAll('.jp-OutputArea-output'));
  const text = outputs.map(o => o.innerText).join('\\n');
  const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')).map(p => p.innerText.trim());
  return {
    images: Array.from(document.querySelectorAll('.jp-OutputArea-output img')).map(i => i.naturalWidth),
    widgets: document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    loading: /Loading widget|Error displaying widget|model not found/i.test(text),
    frozen: /(^|[^\\d])\\d{1,2}%\\|/.test(text),
    failed: Array.from(document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
      .some(o => /Traceback|\\w+Error\\b/.test(o.innerText)),
    cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
    ran: prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p)),
  };
}"""
_ALL_PICTURES = ("n => Array.from(document.querySelectorAll('.jp-OutputArea-output img')).filter(i => i.naturalWidth)"
                 ".length >= n")


def test_executed_lesson_renders_in_jupyterlab(executed_course, browser, lab_env: dict[str, str]) -> None:
    """The executed copy opened where it lies: its saved figures render and its progress bars show 100%. JupyterLab 4
    draws a saved widget only once its cell runs again (it shows the widget's text otherwise:
    jupyterlab/jupyterlab#15361), so a lesson with widgets then runs in JupyterLab (Run All Cells): from the copy's
    folder, every widget appears as a widget view, not "Loading widget...", and every bar ends at 100%."""
    copy, failure, _ = executed_course[LESSON]
    assert failure is None, failure
    before = copy.read_bytes()
    nb = nbformat.read(copy, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    pictures = sum("image/png" in o.get("data", {}) for o in outputs)
    widgets = sum(WIDGET in o.get("data", {}) for o in outputs)
    assert pictures > 0, f"{LESSON}: pick a lesson with figures"
    port, token = _free_port(), secrets.token_hex(8)
    lab = _lab(runpod_jupyterlab_command(), copy.parent, port, token, lab_env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", lab)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/lab/tree/{copy.name}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=45000)
        page.wait_for_function(_ALL_PICTURES, arg=pictures, timeout=30000)
        saved = page.evaluate(_VIEW)
        live = saved
        if widgets:
            # the kernel JupyterLab started is idle; Run All Cells, until every cell ran or one failed
            page.wait_for_function("() => /Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')"
                                   ".innerText)", timeout=60000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            page.wait_for_function(f"() => ({_VIEW})().ran || ({_VIEW})().failed", timeout=240000)
            page.wait_for_function(_ALL_PICTURES, arg=pictures, timeout=30000)
            live = page.evaluate(_VIEW)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"jupyterlab_{LESSON}.png"), full_page=True)
        page.close()
    finally:
        _stop(lab)
    assert copy.read_bytes() == before, "JupyterLab wrote the executed copy"
    assert saved["cells"] == len(nb.cells) and len(saved["images"]) >= pictures and all(saved["images"])
    assert not saved["frozen"], "a saved progress bar stopped short of 100%"
    assert not live["failed"], "a cell failed when the lesson ran in JupyterLab"
    assert len(live["images"]) >= pictures and all(live["images"])
    assert live["widgets"] >= widgets, f"{live['widgets']} widget views, the executed copy has {widgets} widgets"
    assert not live["loading"], "a widget shows as 'Loading widget...' or an error, not as its view"
    assert not live["frozen"], "a progress bar stopped short of 100%"
