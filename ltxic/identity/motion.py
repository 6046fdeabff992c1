"""How far the face travels in a clip: the prompted motion, measured.

:func:`face_travel` tracks the face box frame by frame (the toy world's learned locator, which also finds faces in
decoded frames, or any locator with ``locate(frames)``) and reports how far its centre moved across the frame,
from the first quarter of the clip to the last, in frame widths. A "walks across" prompt should move it by a
quarter of the frame width or more; "stands still" (speaks, nods) by less than a tenth.
:func:`motion_table` scores several clips against those two bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MOVES_AT_LEAST = 0.25  # a walk moves the face by a quarter of the frame width or more
STILL_BELOW = 0.10  # a clip that stands still moves it by less than a tenth


@dataclass(frozen=True)
class FaceTravel:
    """The tracked face's horizontal centre per frame (frame widths, NaN where no face was found) and the travel:
    mean centre of the last quarter minus that of the first (positive: towards image right)."""

    centres: np.ndarray
    travel: float
    found: float  # fraction of frames with a face

    @property
    def distance(self) -> float:
        """How far the face moved, whichever way (frame widths; NaN when it was not found at both ends)."""
        return abs(self.travel)


def face_centres(frames: np.ndarray, locator: Any = None) -> np.ndarray:
    """Horizontal centre of the face box in each uint8 ``(F, H, W, 3)`` frame, in frame widths (NaN: no face).

    ``locator``: anything with ``locate(frames) -> list[box | None]``; default the shipped toy face locator
    (the rule-based one where the learned one is absent)."""
    from ltxic.identity.toy_face_locator import load_face_locator
    from ltxic.toy.locate import locate_faces

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"face_centres: frames must be (F, H, W, 3), got shape {frames.shape}")
    width = frames.shape[2]
    boxes = locator.locate(frames) if locator is not None else locate_faces(frames, load_face_locator())
    return np.array([np.nan if b is None else (b[0] + b[2]) / 2 / width for b in boxes], np.float64)


def face_travel(frames: np.ndarray, locator: Any = None) -> FaceTravel:
    """How far the tracked face moves across ``frames`` (see :class:`FaceTravel`)."""
    centres = face_centres(frames, locator)
    q = max(1, len(centres) // 4)
    first, last = centres[:q], centres[-q:]
    first, last = first[np.isfinite(first)], last[np.isfinite(last)]
    travel = float(last.mean() - first.mean()) if len(first) and len(last) else float("nan")
    found = float(np.isfinite(centres).mean()) if len(centres) else 0.0
    return FaceTravel(centres, travel, found)


def expects_travel(caption: str) -> bool | None:
    """Whether a toy caption asks the face to cross the frame (walks across: True), to stay (False), or is
    outside the toy vocabulary (None). A head turn moves the features inside the face, not the face."""
    from ltxic.toy.scene import Scene

    try:
        action = Scene.from_caption(caption).action
    except ValueError:
        return None
    if action in ("turns head left", "turns head right"):
        return None
    return action == "walks across"


def motion_table(clips: Mapping[str, tuple[np.ndarray, str]] | Sequence[tuple[str, np.ndarray, str]],
                 locator: Any = None) -> list[dict[str, Any]]:
    """One row per clip ``label -> (frames, caption)``: the face's travel (frame widths), the fraction of frames
    with a face, what the caption asks (``"moves"``, ``"stays"`` or None), and whether the travel meets it
    (moves: at least :data:`MOVES_AT_LEAST`; stays: under :data:`STILL_BELOW`)."""
    items = list(clips.items()) if isinstance(clips, Mapping) else [(k, (f, c)) for k, f, c in clips]
    rows = []
    for label, (frames, caption) in items:
        t = face_travel(frames, locator)
        want = expects_travel(caption)
        ok = None
        if want is not None and np.isfinite(t.travel):
            ok = t.distance >= MOVES_AT_LEAST if want else t.distance < STILL_BELOW
        rows.append({"clip": label, "caption": caption, "face_travel": round(t.distance, 3) if np.isfinite(t.travel) else None,
                     "face_found": round(t.found, 3), "asks": None if want is None else ("moves" if want else "stays"),
                     "meets": ok})
    return rows
