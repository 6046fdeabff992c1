"""Is there drift to see? A drift curve read against its own noise, and the frames around its lowest window.

A clip only shows identity drift when the face similarity of its later windows falls by more than the
frame-to-frame noise of a window's mean. :func:`drift_summary` measures both on a :class:`DriftCurve` and says, in
one sentence made from those numbers, whether the clip can show drift; :func:`lowest_window_frames` gives the frame
indices around the lowest window, for the frames a lesson shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ltxic.identity.metrics import DriftCurve
from ltxic.sampling.strips import even_picks


def drift_summary(curve: DriftCurve, fps: float, min_change: float = 0.05) -> dict[str, Any]:
    """First and last window's face similarity, their difference (``change``, negative: the identity fades), the
    noise of a window mean (median over windows of the per-frame standard deviation over sqrt(frames)), the range
    of the window means, the lowest window's time, and ``measurable``: whether the clip holds at least four windows
    and the change exceeds both twice that noise and ``min_change`` (neighbouring frames are alike, so the noise of
    a window mean alone understates how much two windows of a steady clip differ). ``text`` states it in a sentence
    with those numbers."""
    sims = np.asarray(curve.similarity, np.float64)
    finite = np.flatnonzero(np.isfinite(sims))
    per_frame = np.asarray(curve.per_frame, np.float64)
    win = max(1, int(round(curve.window_s * fps)))
    seconds = len(per_frame) / fps
    if len(finite) < 2:
        return {"windows": int(len(sims)), "seconds": seconds, "measurable": False, "first": None, "last": None,
                "change": None, "noise": None, "lowest_s": None,
                "text": f"{seconds:.1f} s clip: a face was found in fewer than two windows, so no drift can be read."}
    first, last = float(sims[finite[0]]), float(sims[finite[-1]])
    starts = np.round((np.asarray(curve.times) * fps - min(win, len(per_frame)) / 2)).astype(int)
    errs = []
    for s in starts:
        chunk = per_frame[max(0, s): s + win]
        chunk = chunk[np.isfinite(chunk)]
        if len(chunk) > 1:
            errs.append(float(chunk.std(ddof=1) / np.sqrt(len(chunk))))
    noise = float(np.median(errs)) if errs else float("nan")
    change = last - first
    lowest = float(curve.times[finite[np.argmin(sims[finite])]])
    measurable = bool(len(finite) >= 4 and np.isfinite(noise) and abs(change) > max(2 * noise, min_change))
    verdict = ("drift is measurable here" if measurable else
               "this clip is too short or too steady for drift to stand out of the noise")
    text = (f"{seconds:.1f} s clip, {len(finite)} windows of {curve.window_s:g} s: face similarity {first:.2f} in the first "
            f"window, {last:.2f} in the last (change {change:+.2f}; windows range {np.nanmin(sims):.2f}-{np.nanmax(sims):.2f}; "
            f"noise of a window mean {noise:.3f}; a change under {min_change:g} counts as none): {verdict}.")
    return {"windows": int(len(finite)), "seconds": seconds, "measurable": measurable, "first": first, "last": last,
            "change": change, "noise": noise, "lowest_s": lowest, "text": text}


def lowest_window_frames(curve: DriftCurve, fps: float, n_frames: int = 6) -> list[int]:
    """``n_frames`` frame indices spread over the lowest-similarity window (its first frame to its last)."""
    sims = np.asarray(curve.similarity, np.float64)
    n = len(curve.per_frame)
    if n == 0:
        raise ValueError("lowest_window_frames: the curve has no frames")
    if not np.isfinite(sims).any():
        return even_picks(n, n_frames)
    win = max(1, int(round(curve.window_s * fps)))
    centre = float(curve.times[int(np.nanargmin(sims))]) * fps
    lo = int(np.clip(round(centre - win / 2), 0, max(0, n - win)))
    hi = min(n - 1, lo + win - 1)
    return [lo + i for i in even_picks(hi - lo + 1, n_frames)]
