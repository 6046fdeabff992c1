"""One source for every number in the prose: no figure about a run (a time, a memory size, a picked step, a parameter
count, a speed-up, a cost) is typed by hand in the lessons' markdown cells, README.md or the book's pages. Such
figures come from the run (a code cell prints or displays them) or from a committed result file, through
ltxic.course.facts; the generated blocks in README.md and book/*.md must equal what the result files give today."""

import json
import re
from pathlib import Path

import pytest

from ltxic.course import facts

ROOT = Path(__file__).resolve().parents[1]

# Figures that are not run results: published facts, recommendations for the user's data, algorithm settings.
ALLOWED = [
    r"\b\d+-\d+ s\b",  # clip and voice lengths recommended for a dataset ("5-15 s of clean speech")
    r"\b5 to 30 s\b",  # clip lengths to try on a GPU (lesson 07)
    r"±500 ms",  # the lip-sync offset range searched
    r"99\.38% on LFW",  # dlib's published accuracy
    r"10 s of reference voice",  # the benchmark's input, not its result
    r"checkpoint step 4 \(",  # an error message quoted in the bad-input table
]


def allowed(figure: str, context: str) -> bool:
    return any(re.search(pattern, context) and figure in re.search(pattern, context).group(0) for pattern in ALLOWED)


def prose() -> list[tuple[str, str]]:
    texts = []
    for nb_path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for i, cell in enumerate(json.loads(nb_path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                texts.append((f"{nb_path.name} cell {i}", "".join(cell["source"])))
    for path in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]:
        texts.append((str(path.relative_to(ROOT)), path.read_text()))
    return texts


@pytest.mark.parametrize("where,text", prose(), ids=[w for w, _ in prose()])
def test_no_hand_typed_run_figures(where, text):
    found = facts.run_figures(text, allowed)
    assert not found, f"{where}: figures about runs typed by hand (render them from the run or a result file): {found}"


@pytest.mark.parametrize("path", ["README.md", "book/index.md", "book/runpod.md"])
def test_generated_blocks_match_the_result_files(path):
    text = (ROOT / path).read_text()
    assert facts.fact_blocks(text), f"{path} has no generated block"
    assert facts.refresh_fact_blocks(text) == text, (
        f"{path}: a generated block differs from the result files; run "
        f"`python -c \"from ltxic.course.facts import refresh_fact_blocks as r; from pathlib import Path; "
        f"p = Path('{path}'); p.write_text(r(p.read_text()))\"`")


def test_the_scanner_finds_what_the_issue_listed():
    for typed in ("took 55 s", "drawn at 74.5 GiB", "5.0 h for 6000 steps", "keep step 200", "19 billion parameters",
                  "a 2.2 M-parameter model", "ran 1.86x faster", "needed 57% of"):
        assert facts.run_figures(typed), typed
    assert not facts.run_figures("a 24 GB card, 128x128x25, LTX-2.3 22B, Gemma 3 12B, x2 upscaler")
    assert not facts.run_figures("<!-- facts:memory_lines -->\n74.5 GiB\n<!-- /facts -->")


def test_the_22b_split_adds_up():
    split = facts.parameter_split()
    assert split["transformer"] == pytest.approx(18.988838144)  # the count tests/test_models.py pins
    assert split["total"] == pytest.approx(split["transformer"] + split["connectors"])
    assert round(split["total"]) == 22 and round(split["transformer"]) == 19
    text = facts.parameter_split_markdown()
    assert f"{split['total']:.2f} B" in text and f"{split['transformer']:.2f} B" in text


def test_one_memory_line_per_card():
    lines = facts.card_memory_gib()
    meta = json.loads(facts.H100_RESULTS.read_text())["meta"]
    assert lines["H100 80 GB"] == meta["gpu_total_gib"] == facts.h100_memory_gib()
    assert lines["24 GB card"] == json.loads(facts.REAL_PATH_RESULTS.read_text())["24gb"]["cap_gib"]


def test_gpu_run_times_name_both_setups():
    times = facts.full_run_times()
    text = facts.gpu_run_times_markdown()
    assert f"{times['train_path']['hours']:.1f} h" in text and f"{times['speed_run']['minutes']:.0f} min" in text
    assert times["train_path"]["bucket"] in text and times["speed_run"]["bucket"] in text
    assert times["train_path"]["hours"] * 60 > times["speed_run"]["minutes"]
