"""Figures that a notebook shows as images whatever the matplotlib backend.

IPython draws a bare :class:`matplotlib.figure.Figure` as a PNG only once pyplot's inline backend has registered
its formatter, which happens when pyplot first resolves the backend, not when it is imported. A lesson that
displays a figure before any pyplot call (papermill's fresh kernel, ``display(plot_drift(...))``) would otherwise
get the text ``<Figure size 700x340 with 1 Axes>``. :class:`NotebookFigure` carries its own PNG representation,
and it stays out of pyplot's figure manager, so it is never shown twice or kept alive by pyplot.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

__all__ = ["NotebookFigure", "new_figure"]


class NotebookFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that IPython renders as a PNG (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        # the inline backend's own defaults: tight bounding box, its dpi
        self.savefig(buf, format="png", bbox_inches="tight", dpi=100)
        return buf.getvalue()


def new_figure(**kwargs: Any) -> NotebookFigure:
    """A :class:`NotebookFigure` (``Figure`` keyword arguments: ``figsize``, ``layout``, ...)."""
    return NotebookFigure(**kwargs)
