"""Find the face in a toy frame from pixels alone: the skin-coloured region that has eyes and a mouth in it."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage


def _tolerance(colour: np.ndarray) -> float:
    return float(0.1 * np.linalg.norm(colour) + 6.0)


def locate_face(frame: np.ndarray, skin: tuple[int, int, int] | None = None) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1), exclusive, of the visible face skin in a uint8 (H, W, 3) toy frame, or None.

    Candidates are the frame's dominant non-background colours; the face is the largest region of one colour
    that is roughly elliptical and has small holes in it (eyes, brows, mouth). Hair, clothes and floor have
    none, or (long hair framing the face) one hole as big as the face. ``skin`` (the identity's skin
    colour before lighting) only orders the candidates by chromaticity: lighting changes brightness.
    """
    img = np.asarray(frame, np.float32)
    h, w, _ = img.shape
    corners = np.stack([img[:4, :4].reshape(-1, 3).mean(0), img[:4, -4:].reshape(-1, 3).mean(0)])
    dist_bg = np.linalg.norm(img[:, :, None, :] - corners[None, None], axis=-1).min(-1)
    fg = dist_bg > np.array([_tolerance(c) for c in corners]).max() * 1.2
    if fg.sum() < 20:
        return None
    q = (img[fg] // 16).astype(np.int32)
    keys = q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts)[:10]
    candidates = [img[fg][keys == values[k]].mean(0) for k in order if counts[k] >= max(12, 0.002 * h * w)]
    if skin is not None:
        target = np.asarray(skin, np.float32) / (np.sum(skin) + 1e-6)
        candidates.sort(key=lambda c: float(np.abs(c / (c.sum() + 1e-6) - target).sum()))
        candidates = candidates[:3]
    best, best_area = None, 0
    for colour in candidates:
        mask = np.linalg.norm(img - colour, axis=-1) < _tolerance(colour)
        labels, n = ndimage.label(mask)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        comp = labels == (np.argmax(sizes) + 1)
        filled = ndimage.binary_fill_holes(comp)
        area = int(filled.sum())
        if area < 30 or area <= best_area:
            continue
        hole_frac = 1.0 - comp.sum() / area
        ys, xs = np.nonzero(filled)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        fill = area / ((box[2] - box[0]) * (box[3] - box[1]))
        holes, n_holes = ndimage.label(filled & ~comp)
        biggest_hole = np.bincount(holes.ravel())[1:].max() / area if n_holes else 0.0
        # eyes and mouth are small holes; a region ringing the face (hair, hair + collar) has one face-sized hole
        if area - comp.sum() >= 3 and 0.003 <= hole_frac <= 0.35 and biggest_hole < 0.15 and fill >= 0.5:
            best, best_area = box, area
    return best


def locate_faces(frames: np.ndarray, locator: Any = None) -> list[tuple[int, int, int, int] | None]:
    """The face box of each uint8 (H, W, 3) frame, or None: by ``locator`` (the learned
    :class:`~ltxic.identity.toy_face_locator.FaceLocator`, which also finds faces in decoded frames) when given, else by
    :func:`locate_face`."""
    return locator.locate(frames) if locator is not None else [locate_face(f) for f in frames]
