"""Tables that render as tables: in JupyterLab and the book (HTML), in Markdown, and as aligned text in a terminal.

A lesson that prints rows (dicts of scores, a list of nodes) shows ``Table(rows)`` instead: the notebook keeps
``text/html``, ``text/markdown`` and ``text/plain`` of it, so every viewer picks a form it renders. Paths in a table,
and any a lesson prints through :func:`shown_path`, are relative: an output never names the machine's folders.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

__all__ = ["Table", "shown_path"]

_PACKAGE = Path(__file__).resolve().parents[1]


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` as an output should show it: a file of the ``ltxic`` package as ``ltxic/...``, anything else relative
    to the working folder (``../data_samples/...``, a lesson's folder), so no output names the machine's folders."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    if p.resolve().is_relative_to(_PACKAGE):
        return (Path(_PACKAGE.name) / p.resolve().relative_to(_PACKAGE)).as_posix()
    return Path(os.path.relpath(p, Path.cwd())).as_posix()


def _cell(value: Any, digits: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, PurePath):
        return shown_path(value)
    if isinstance(value, float):  # fixed decimals, except a value they would round to 0 (a learning rate)
        if digits is None:
            return f"{value:g}"
        return f"{value:.{digits}f}" if value == 0 or abs(value) >= 10**-digits else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v, digits) for v in value)
    return str(value)


class Table:
    """Rows of values under named columns.

    ``rows``: mappings (their keys are the columns, in first-seen order, unless ``columns`` names them) or
    sequences (``columns`` required). Floats show ``digits`` decimals (``None``: as short as exact; a mapping gives
    some columns their own, e.g. ``{"lip_sync_offset_ms": 0}``, the rest 3), ``None`` and NaN a dash; columns whose
    values are all numbers are right-aligned. ``title``: a caption above the table. ``fold``:
    columns shown once, in the title, where every row holds the same value (a long note repeated on every row
    would stretch each row to many lines); a column whose values differ stays a column.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str] | None = None, *,
                 digits: int | None | Mapping[str, int | None] = 3, title: str = "",
                 fold: Sequence[str] = ()) -> None:
        if columns is None:
            if not all(isinstance(r, Mapping) for r in rows):
                raise ValueError("Table: rows that are not mappings need their columns")
            columns = list(dict.fromkeys(k for r in rows for k in r))  # type: ignore[union-attr]
        self.columns = [str(c) for c in columns]
        self.rows = [[r.get(c) for c in columns] if isinstance(r, Mapping) else list(r) for r in rows]
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(f"Table: a row of {len(r)} values under {len(self.columns)} columns")
        places = {c: (digits.get(c, 3) if isinstance(digits, Mapping) else digits) for c in self.columns}
        folded = []
        for name in fold:
            j = self.columns.index(name) if name in self.columns else None
            if j is not None and self.rows and all(r[j] == self.rows[0][j] for r in self.rows):
                folded.append(f"{name}: {_cell(self.rows[0][j], places[name])}")
                del self.columns[j]
                for r in self.rows:
                    del r[j]
        title = "; ".join([title, *folded] if title else folded)
        self.title = title
        self.cells = [[_cell(v, places[c]) for v, c in zip(r, self.columns)] for r in self.rows]
        self.numeric = [bool(self.rows) and all(isinstance(r[j], (int, float)) and not isinstance(r[j], bool)
                                                or r[j] is None for r in self.rows) for j in range(len(self.columns))]

    def to_markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

        rule = "| " + " | ".join("---:" if n else "---" for n in self.numeric) + " |"
        text = "\n".join([line(self.columns), rule, *(line(r) for r in self.cells)])
        return f"**{self.title}**\n\n{text}" if self.title else text

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        def row(tag: str, cells: Sequence[str]) -> str:
            num = ' class="num"'
            return "<tr>" + "".join(f"<{tag}{num if n else ''}>{html.escape(c)}</{tag}>"
                                    for c, n in zip(cells, self.numeric)) + "</tr>"

        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        body = "".join(row("td", r) for r in self.cells)
        return (f'<table class="ltxic-table">{caption}<thead>{row("th", self.columns)}</thead>'
                f"<tbody>{body}</tbody></table>")

    def __str__(self) -> str:
        widths = [max([len(c), *(len(r[j]) for r in self.cells)]) for j, c in enumerate(self.columns)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, self.numeric)).rstrip()

        lines = [line(self.columns), *(line(r) for r in self.cells)]
        return "\n".join(([self.title] if self.title else []) + lines)

    __repr__ = __str__
