"""A small face-detector interface: OpenCV's shipped Haar cascade for real footage, the toy locator for toy clips.

Both answer the one question the dataset tools ask ("where are the faces in this frame?"); neither recognises
who it is. The Haar cascade is a frontal-face detector: profiles and strong head turns are missed, so checks
built on it count frames, not single detections.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


@runtime_checkable
class FaceDetector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Face boxes in a uint8 RGB frame (H, W, 3)."""
        ...


def _gray(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 2:
        return f.astype(np.uint8)
    return (f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114).round().astype(np.uint8)


class HaarFaceDetector:
    """OpenCV's ``haarcascade_frontalface_default.xml`` (ships with opencv-python-headless; no download)."""

    name = "haar"

    def __init__(self, cascade: str | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size_fraction: float = 0.08):
        import cv2

        path = cascade or cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"{path}: could not load the Haar cascade; reinstall opencv-python-headless (<5)")
        self.scale_factor, self.min_neighbors, self.min_size_fraction = scale_factor, min_neighbors, min_size_fraction

    def detect(self, frame: np.ndarray) -> list[Box]:
        gray = _gray(frame)
        side = max(12, int(self.min_size_fraction * min(gray.shape[:2])))
        found = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(side, side))
        return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]


class ToyFaceDetector:
    """The toy world's face locator (:func:`ltxic.toy.locate_face`): one face or none per frame."""

    name = "toy"

    def detect(self, frame: np.ndarray) -> list[Box]:
        from ltxic.toy import locate_face

        box = locate_face(frame)
        return [] if box is None else [box]


def make_face_detector(kind: str | FaceDetector) -> FaceDetector:
    """``"haar"`` or ``"toy"`` (or a detector, returned as is)."""
    if not isinstance(kind, str):
        return kind
    if kind == "haar":
        return HaarFaceDetector()
    if kind == "toy":
        return ToyFaceDetector()
    raise ValueError(f"face detector {kind!r}: use 'haar' (real footage), 'toy' (toy clips) or 'auto'")


def sharpness(frame: np.ndarray, box: Box | None = None) -> float:
    """Variance of the Laplacian of the (cropped) grey frame: higher is sharper."""
    import cv2

    gray = _gray(frame)
    if box is not None:
        x0, y0, x1, y1 = box
        gray = gray[max(0, y0):y1, max(0, x0):x1]
    if gray.size == 0:
        return 0.0
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def centred_face(boxes: list[Box], width: int, height: int, *, centre_band: float = 0.5,
                 min_height_fraction: float = 0.1) -> Box | None:
    """The frame's single face if its centre lies in the middle ``centre_band`` of the frame and it is not tiny."""
    if len(boxes) != 1:
        return None
    x0, y0, x1, y1 = boxes[0]
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    lo, hi = 0.5 - centre_band / 2, 0.5 + centre_band / 2
    if not (lo <= cx <= hi and lo <= cy <= hi) or (y1 - y0) < min_height_fraction * height:
        return None
    return boxes[0]


def mirror_asymmetry(frame: np.ndarray, box: Box) -> float:
    """How much the face crop differs from its left-right mirror image, relative to its contrast.

    A frontal face is nearly symmetric; a head turned away is not (a nod keeps the symmetry; see
    :func:`ltxic.data.dataset.pick_reference_frame` for how nods are excluded)."""
    x0, y0, x1, y1 = box
    g = _gray(frame)[max(0, y0):y1, max(0, x0):x1].astype(np.float32)
    if g.size == 0:
        return float("inf")
    return float(np.abs(g - g[:, ::-1]).mean() / (g.std() + 1e-6))
