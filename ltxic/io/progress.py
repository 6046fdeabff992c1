"""Progress bars that end at their final state in a terminal, in JupyterLab, in executed notebooks and in the book.

``tqdm.auto`` draws an ipywidgets bar in a Jupyter kernel. Its state lives in the browser: an executed notebook
(papermill, ``ltxic course``) keeps only the text shown when the bar was created, so the copy and the book stay frozen
at ``0%| 0/300`` whatever the run did. :func:`progress` draws tqdm's text bar instead, and in a kernel sends it
through one display handle that it updates in place (``update_display_data``): JupyterLab redraws it live, and
nbclient writes each update into the saved output, so the executed copy holds the bar's last line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.std import tqdm

__all__ = ["BarText", "in_notebook", "progress"]

#: Width of the text bar in a notebook (a kernel has no terminal to measure).
NOTEBOOK_COLUMNS = 100


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, papermill), False in a terminal or plain Python."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class BarText:
    """One line of a progress bar as a notebook output (plain text, so the book and any viewer show it)."""

    def __init__(self, line: str) -> None:
        self.line = line

    def __repr__(self) -> str:
        return self.line


class _DisplayLine:
    """A file for tqdm that shows the latest line it writes in one notebook display, updated in place."""

    encoding = "utf-8"  # tqdm draws its bar with block characters only on a file that says so

    def __init__(self) -> None:
        self._handle: Any = None

    def write(self, text: str) -> None:
        from IPython.display import display

        if "\r" not in text:  # the newline tqdm writes when a bar it leaves closes
            return
        line = text.rsplit("\r", 1)[-1].rstrip()  # tqdm redraws with "\r" + bar (+ blanks over a longer old bar)
        if self._handle is None:
            if line:
                self._handle = display(BarText(line), display_id=True)
        else:  # an empty line: a bar with leave=False closing
            self._handle.update(BarText(line))

    def flush(self) -> None:
        pass


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (same arguments as ``tqdm``): on stderr in a terminal, and in a Jupyter kernel a text bar in the
    cell's output that ends at its last state, also in the saved notebook."""
    if in_notebook() and "file" not in kwargs:
        kwargs.pop("dynamic_ncols", None)
        kwargs.setdefault("ncols", NOTEBOOK_COLUMNS)
        kwargs["file"] = _DisplayLine()
    return tqdm(iterable, **kwargs)
