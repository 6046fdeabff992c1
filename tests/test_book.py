"""The course book: built offline from the executed lessons, and checked in a real browser (headless Chromium).

The browser is Debian's ``chromium`` package, driven by Playwright with ``executable_path`` (no browser download);
``.ci/run`` installs it (the ``browser`` fixture, ``tests/conftest.py``). Without it the browser test is skipped,
except where ``LTXIC_REQUIRE_BROWSER=1`` (CI), where it fails. On every page it checks what a reader sees
(:func:`page_problems`), and each check is shown to fail on a small page with its defect. Screenshots of the landing page and of lesson 06 go to ``$LTXIC_ARTIFACTS`` (default
``outputs/artifacts/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from ltxic.course.book import executed_copy_problems, gpu_run_table
from ltxic.course.runner import REPO_ROOT, lessons

pytestmark = pytest.mark.notebooks
ARTIFACTS = Path(os.environ.get("LTXIC_ARTIFACTS", REPO_ROOT / "outputs" / "artifacts"))


def _offline_prefix() -> list[str]:
    """``unshare -rn`` (a private network namespace with no interfaces) where the kernel allows it, so the build
    is proven to need no network; elsewhere the build runs as is."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


@pytest.fixture(scope="module")
def book(executed_course, tmp_path_factory) -> Path:
    """``ltxic book`` from the course run of the test session (no lesson re-run: ``--no-execute``), offline."""
    failed = {stem: err for stem, (_, err, _) in executed_course.items() if err}
    assert not failed, f"lessons failed, so the book cannot be built: {failed}"
    executed = next(iter(executed_course.values()))[0].parent
    out = tmp_path_factory.mktemp("book") / "html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [*_offline_prefix(), sys.executable, "-m", "ltxic.cli", "book", "--out", str(out), "--executed", str(executed),
           "--no-execute"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # warnings are errors (-W)
    return out


def test_book_has_every_chapter_with_its_results(book: Path) -> None:
    intro = (book / "book" / "index.html").read_text()
    assert "Consent" in intro and "Two scales, one code path" in intro
    assert 'url=book/index.html' in (book / "index.html").read_text()
    # the landing page's result: lesson 06's picture and its table of scores, from this run
    assert (book / "_images" / "course_result.png").is_file()
    for condition in ("base, text only", "LoRA at strength 0", "IC-LoRA"):
        assert f"<td><p>{condition}</p></td>" in intro
    for nb in lessons():
        page = book / "notebooks" / f"{nb.stem}.html"
        assert page.is_file(), f"no chapter page for {nb.name}"
        assert f"../notebooks/{nb.stem}.html" in intro, f"{nb.stem} missing from the table of contents"
        title = nbformat.read(nb, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        assert title.split(" · ")[-1].split(":")[0] in page.read_text()
    runpod = (book / "book" / "runpod.html").read_text()
    assert "Running on RunPod" in runpod and "ltx23_24gb" in runpod and "ltx23_h100" in runpod


def test_stale_copies_are_refused_without_execution(tmp_path: Path) -> None:
    from ltxic.course.book import ensure_executed
    from ltxic.course.runner import CourseError

    with pytest.raises(CourseError, match=r"no executed copy of 00_setup.ipynb.*ltxic course --out"):
        ensure_executed(tmp_path, execute=False)
    lesson = lessons()[0]
    nb = nbformat.read(lesson, as_version=4)
    nb.metadata["papermill"] = {}
    [c for c in nb.cells if c.cell_type == "code"][-1].source += "\nprint('changed')"
    for c in nb.cells:
        if c.cell_type == "code":
            c.execution_count = 1
    nbformat.write(nb, tmp_path / lesson.name)
    assert executed_copy_problems(tmp_path / lesson.name, lesson) == [
        f"{tmp_path / lesson.name}: its code differs from {lesson} (the lesson changed since it ran)"]


def test_gpu_table_comes_from_the_benchmark() -> None:
    import json

    from ltxic.training.config import example_config, load_config

    data = json.loads((REPO_ROOT / "benchmarks" / "results" / "ltx23_real_path.json").read_text())
    table = gpu_run_table()
    for section in ("h100", "24gb"):
        run = data[section]
        steps = load_config(example_config(run["config"]), check_files=False).optimization.steps
        row = next(line for line in table.splitlines() if f"`{run['config']}`" in line)
        assert f"{run['train']['step_seconds_median']:.2f}" in row
        assert f"{steps * run['train']['step_seconds_median'] / 3600:.1f} h" in row
        assert f"{run['train']['step_peak_gib']:.1f} GiB" in row


# ----------------------------------------------------------------------------------------------- in Chromium
_PAGE_CHECK = """async () => {
  const images = Array.from(document.images).map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth,
                                                          shown: i.getBoundingClientRect().width}));
  const videos = [];
  for (const v of document.querySelectorAll('video')) {
    const src = v.currentSrc || v.src || (v.querySelector('source') || {}).src || '';
    let fetched = 0;
    try { fetched = (await (await fetch(src)).arrayBuffer()).byteLength; } catch (e) { fetched = -1; }
    if (v.readyState < 1) await new Promise(r => { v.onloadedmetadata = r; v.onerror = r; setTimeout(r, 10000); });
    v.muted = true;
    try { await v.play(); } catch (e) {}
    await new Promise(r => setTimeout(r, 400));
    v.pause();
    videos.push({src: src.slice(0, 40), fetched, duration: v.duration, width: v.videoWidth,
                 audioBytes: v.webkitAudioDecodedByteCount, error: v.error && v.error.code});
  }
  const audios = [];
  for (const a of document.querySelectorAll('audio')) {
    if (a.readyState < 1) await new Promise(r => { a.onloadedmetadata = r; a.onerror = r; setTimeout(r, 10000); });
    audios.push({duration: a.duration, error: a.error && a.error.code});
  }
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const text = document.body.innerText;
  const outputs = Array.from(document.querySelectorAll('.cell_output')).map(o => o.innerText).join('\\n');
  return {images, videos, audios, links, text, outputs};
}"""

# What a reader must not see. A pipe table's rule line (| --- | ---: |) left as text; a progress bar short of 100%;
# a Python warning; in a cell's output an absolute path, and anywhere a path of this machine.
PIPE_TABLE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$", re.M)
UNFINISHED_BAR = re.compile(r"(?<![\d.])\d{1,2}%\|")
PYTHON_WARNING = re.compile(r"\b[A-Z]\w*Warning: |warnings\.warn\(")
ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))/(?:[\w.+-]+/)+[\w.+-]*", re.M)
# A figure shown below this share of its pixels (at a 1280 px window) has labels too small to read: the lessons'
# smallest labels are 7-9 pt at 100 dpi, 10-12.5 px, so 0.65 keeps them at 6.5 px and up.
MIN_IMAGE_SCALE = 0.65
MACHINE_PATHS = sorted({str(REPO_ROOT), tempfile.gettempdir() + "/", str(Path.home()) + "/", sys.prefix} - {"/"})


def page_problems(name: str, result: dict) -> list[str]:
    """What a reader of one page would see go wrong, from :data:`_PAGE_CHECK`'s ``result``."""
    problems = [f"{name}: image {i['src'][:80]} did not load" for i in result["images"] if not i["width"]]
    problems += [f"{name}: image {i['src'][-40:]} shown at {i['shown'] / i['width']:.2f} of its width, its labels too "
                 f"small to read" for i in result["images"] if i["width"] and i["shown"] / i["width"] < MIN_IMAGE_SCALE]
    for v in result["videos"]:
        if v["fetched"] <= 0 or not v["duration"] or v["duration"] != v["duration"] or v["error"]:
            problems.append(f"{name}: video {v} cannot be played")
        elif not v["audioBytes"]:
            problems.append(f"{name}: video {v} played without sound")
    problems += [f"{name}: audio {a} cannot be played" for a in result["audios"]
                 if a["error"] or not a["duration"] or a["duration"] != a["duration"]]
    text = result["text"]
    problems += [f"{name}: a Markdown table shown as text: {m.group(0).strip()[:60]!r}" for m in PIPE_TABLE.finditer(text)]
    problems += [f"{name}: a progress bar stopped at {m.group(0)!r}" for m in UNFINISHED_BAR.finditer(text)]
    problems += [f"{name}: a Python warning: {m.group(0)!r}" for m in PYTHON_WARNING.finditer(text)]
    problems += [f"{name}: an absolute path in an output: {m.group(0)!r}" for m in ABSOLUTE_PATH.finditer(result["outputs"])]
    # as the start of a path: "../../tmp/x" (relative, from a test's temporary folder) names no folder of the machine
    # one problem per place, named by its most specific folder (a checkout under /tmp is the checkout, not /tmp)
    seen: list[tuple[int, int]] = []
    for p in sorted(MACHINE_PATHS, key=len, reverse=True):
        spans = [m.span() for m in re.finditer(r"(?<![\w.])" + re.escape(p), text)]
        fresh = [sp for sp in spans if not any(a <= sp[0] < b for a, b in seen)]
        if fresh:
            problems.append(f"{name}: a path of this machine: {p!r}")
        seen += spans
    return problems


def _internal_link_problems(page: Path, links: list[str], root: Path) -> list[str]:
    problems = []
    for href in links:
        url = urlsplit(href)
        if url.scheme != "file":
            continue
        target = Path(unquote(url.path))
        if not target.is_relative_to(root):
            problems.append(f"{page.name}: link {href} leaves the book")
        elif target.is_dir() or not target.exists():
            problems.append(f"{page.name}: broken link {href}")
        elif url.fragment and target.suffix == ".html" and f'id="{url.fragment}"' not in target.read_text():
            problems.append(f"{page.name}: link {href} names no element id {url.fragment!r}")
    return problems


def test_book_in_chromium(book: Path, browser, executed_course) -> None:
    """Every chapter in headless Chromium: what a reader sees is right (:func:`page_problems`: images decode at a
    legible scale, every clip plays with sound, no table or progress bar left as text, no warning, no path of the
    machine), no link inside the book is broken, and nothing outside the book is requested."""
    pages = [book / "book" / "index.html", book / "book" / "runpod.html",
             *(book / "notebooks" / f"{nb.stem}.html" for nb in lessons())]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    outside: list[str] = []
    seen: dict[str, dict] = {}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(re.compile(r"^(https?|wss?)://"), lambda route: (outside.append(route.request.url), route.abort()))
    for path in pages:
        page = context.new_page()
        page.goto(path.as_uri(), wait_until="load")
        result = page.evaluate(_PAGE_CHECK)
        seen[f"{path.parent.name}/{path.stem}"] = result
        problems += page_problems(path.name, result)
        problems += _internal_link_problems(path, result["links"], book)
        if path == book / "book" / "index.html":
            page.screenshot(path=str(ARTIFACTS / "book_landing.png"), full_page=True)
        if path.stem == "06_inference":
            page.screenshot(path=str(ARTIFACTS / "book_06_inference.png"), full_page=True)
        page.close()
    context.close()
    assert problems == []
    assert outside == [], f"the book must work offline: it requested {sorted(set(outside))}"
    # what the pages must show: every lesson's plots (each picture of the executed copy), lesson 06's clips and
    # voice, lesson 07's clip, the landing page's result
    for nb in lessons():
        copy = nbformat.read(executed_course[nb.stem][0], as_version=4)
        pictures = sum("image/png" in o.get("data", {}) for c in copy.cells if c.cell_type == "code" for o in c.outputs)
        assert len(seen[f"notebooks/{nb.stem}"]["images"]) >= pictures, f"{nb.stem}: pictures missing from its page"
    assert len(seen["notebooks/06_inference"]["videos"]) >= 2 and len(seen["notebooks/06_inference"]["audios"]) >= 1
    assert len(seen["notebooks/07_drift"]["videos"]) >= 1
    result = next(i for i in seen["book/index"]["images"] if "course_result" in i["src"])
    assert result["shown"] / result["width"] >= 0.85, "the landing page's comparison: its score labels must be legible"
    assert (ARTIFACTS / "book_landing.png").stat().st_size > 0 and (ARTIFACTS / "book_06_inference.png").stat().st_size > 0


def _page_result(browser, html: str, folder: Path) -> dict:
    page_file = folder / "page.html"
    page_file.write_text(f"<!doctype html><html><body>{html}</body></html>")
    page = browser.new_page()
    page.goto(page_file.as_uri(), wait_until="load")
    result = page.evaluate(_PAGE_CHECK)
    page.close()
    return result


def test_each_page_check_fails_on_its_defect(browser, tmp_path: Path) -> None:
    """One small page per defect the browser test looks for: each is named, and a clean page passes."""
    import base64

    import imageio_ffmpeg

    clip = next((REPO_ROOT / "data_samples" / "clips").glob("*.mp4"))
    shutil.copy(clip, tmp_path / "voiced.mp4")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(clip), "-an", "-c:v", "copy",
                    str(tmp_path / "silent.mp4")], check=True)
    from PIL import Image

    Image.new("RGB", (600, 200), "white").save(tmp_path / "figure.png")
    out = '<div class="cell_output"><pre>{}</pre></div>'
    embedded = {}  # as the book embeds its clips (IPython's Video with embed=True)
    for name in ("voiced", "silent"):
        data = base64.b64encode((tmp_path / f"{name}.mp4").read_bytes()).decode()
        embedded[name] = f'<video controls><source src="data:video/mp4;base64,{data}" type="video/mp4"></video>'
    clean = ('<table class="ltxic-table"><tr><th>step</th></tr><tr><td>100</td></tr></table>'
             + out.format("training: 100%|##########| 300/300 [00:55&lt;00:00] ../outputs/course/x.mp4 it/s")
             + '<img src="figure.png">' + embedded["voiced"])
    assert page_problems("clean", _page_result(browser, clean, tmp_path)) == []
    defects = {
        out.format("| step | face |\n| ---: | ---: |\n| 100 | 0.5 |"): "a Markdown table shown as text",
        out.format("training:   0%|          | 0/300 [00:00&lt;?, ?it/s]"): "a progress bar stopped at '0%|'",
        out.format("lesson.py:3: UserWarning: the kit is missing"): "a Python warning: 'UserWarning: '",
        out.format("LoRA: /srv/runs/04_training/lora.safetensors"): "an absolute path in an output: '/srv/runs/",
        f"<p>written to {REPO_ROOT}/outputs</p>": f"a path of this machine: '{REPO_ROOT}'",
        '<img src="missing.png">': "image file://",
        '<img src="figure.png" style="width: 240px">': "shown at 0.40 of its width",
        embedded["silent"]: "played without sound",
        '<video controls src="missing.mp4"></video>': "cannot be played",
    }
    for html, expected in defects.items():
        found = page_problems("defect", _page_result(browser, html, tmp_path))
        assert len(found) == 1 and expected in found[0], (html, found)
