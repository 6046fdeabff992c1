"""What lessons show: progress bars end at their final state, in a real Jupyter kernel (as JupyterLab and ``ltxic
course`` run lessons, the executed notebook keeps the bar's last line) and in a terminal; tables render in every form
with relative paths."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from ltxic.course.runner import REPO_ROOT

BARS = """
from ltxic.io.progress import progress
for _ in progress(range(300), desc="training", unit="it", dynamic_ncols=True):
    pass
with progress(total=40, desc="vanishing", leave=False) as bar:
    bar.update(40)
"""


def test_executed_notebook_keeps_the_final_bar(tmp_path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BARS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"], outputs
    training, vanishing = (o.data for o in outputs)
    assert set(training) == {"text/plain"}, "a plain text bar, no widget whose state is lost"
    assert training["text/plain"].startswith("training: 100%|") and "300/300" in training["text/plain"]
    assert vanishing["text/plain"] == "", "leave=False clears its bar, as in a terminal"


def test_terminal_bar_goes_to_stderr() -> None:
    code = "from ltxic.io.progress import progress\nfor _ in progress(range(5), desc='x'): pass\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "x: 100%|" in proc.stderr and "5/5" in proc.stderr


def test_a_table_renders_in_every_form() -> None:
    from ltxic.io.tables import Table

    table = Table([{"step": 100, "face": 0.51234, "note": "a|b"}, {"step": 200, "face": None, "note": "<ok>"}],
                  title="scores")
    assert table.to_markdown().splitlines()[2:5] == ["| step | face | note |", "| ---: | ---: | --- |",
                                                    "| 100 | 0.512 | a\\|b |"]
    html = table._repr_html_()
    assert "<caption>scores</caption>" in html and '<td class="num">0.512</td>' in html and "&lt;ok&gt;" in html
    assert str(table).splitlines() == ["scores", "step   face  note", " 100  0.512  a|b", " 200      -  <ok>"]
    with pytest.raises(ValueError, match="a row of 2 values under 3 columns"):
        Table([[1, 2]], columns=["a", "b", "c"])
    # paths relative (a package file as ltxic/...), a learning rate not rounded away, lists joined
    config = REPO_ROOT / "ltxic" / "configs" / "tiny_cpu.yaml"
    row = Table([[config, 0.0005, ["128x128x25", "64x64x9"]]], columns=["file", "lr", "buckets"]).cells[0]
    assert row == ["ltxic/configs/tiny_cpu.yaml", "0.0005", "128x128x25, 64x64x9"]
    # a note the same on every row goes into the title once; one that differs stays a column
    rows = [{"step": 100, "embedders": "toy face CNN", "note": "a"}, {"step": 200, "embedders": "toy face CNN", "note": "b"}]
    folded = Table(rows, title="scores", fold=["embedders", "note"])
    assert folded.columns == ["step", "note"] and folded.title == "scores; embedders: toy face CNN"
    assert "<caption>scores; embedders: toy face CNN</caption>" in folded._repr_html_()
    # a column of whole milliseconds gets its own decimals, the rest keep 3
    ms = Table([{"face": 0.5, "lip_sync_offset_ms": -85.0}], digits={"lip_sync_offset_ms": 0})
    assert ms.cells == [["0.500", "-85"]]


def test_shown_path_is_relative(tmp_path, monkeypatch) -> None:
    from ltxic.io.tables import shown_path

    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert shown_path(tmp_path / "data_samples" / "x.json") == "../data_samples/x.json"
    assert shown_path("../data_samples/x.json") == "../data_samples/x.json"
