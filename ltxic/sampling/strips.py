"""Frame strips side by side: one row of frames per clip (a validation step, a checkpoint, the base model), at the
same times, with the reference beside them, so a change across training is seen at a glance (lessons 04, 05, 07)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def even_picks(count: int, n_frames: int) -> list[int]:
    """``n_frames`` frame indices spread evenly over ``count`` frames, first and last included."""
    if count <= 0:
        raise ValueError("even_picks: the clip has no frames")
    return [int(i) for i in np.unique(np.linspace(0, count - 1, min(n_frames, count)).round().astype(int))]


def frame_strips(rows: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]], fps: float, *,
                 picks: Sequence[int] | None = None, n_frames: int = 6, reference: np.ndarray | None = None,
                 title: str = ""):
    """A matplotlib figure with one row per ``label -> frames (F, H, W, 3) uint8`` (a mapping, or (label, frames)
    pairs where labels may repeat): the same frame indices in every row (``picks``, or ``n_frames`` spread over the
    shortest clip), the reference (when given) first in each row, the label at the row's left and each column's
    time on top."""
    from ltxic.io.figures import new_figure

    rows = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    if not rows:
        raise ValueError("frame_strips: no clips to show")
    count = min(len(f) for _, f in rows)
    cols = list(picks) if picks is not None else even_picks(count, n_frames)
    if any(not 0 <= c < count for c in cols):
        raise ValueError(f"frame_strips: frame indices {cols} outside the shortest clip's {count} frames")
    extra = reference is not None
    n_cols = len(cols) + extra
    fig = new_figure(figsize=(1.45 * n_cols + 0.9, 1.5 * len(rows) + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), n_cols, squeeze=False))
    for r, (label, frames) in enumerate(rows):
        if extra:
            axes[r, 0].imshow(reference)
            if r == 0:
                axes[r, 0].set_title("reference", fontsize=9)
        for c, idx in enumerate(cols):
            ax = axes[r, c + extra]
            ax.imshow(frames[idx])
            if r == 0:
                ax.set_title(f"{idx / fps:.2f} s", fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
        for ax in axes[r]:
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    if title:
        fig.suptitle(title[:100], fontsize=10)
    return fig
