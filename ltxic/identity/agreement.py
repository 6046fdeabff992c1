"""The identity embedders as a :class:`ltxic.data.pairing.FaceMatcher`: ``ltxic pair`` picks an identity's reference
from the clips that agree on one face (pairing sits below identity, so the command passes this in)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ltxic.identity.embedders import IdentityModels
from ltxic.identity.select import identity_models

__all__ = ["EmbedderFaceMatcher", "face_matcher"]


class EmbedderFaceMatcher:
    """One face embedding per clip (the mean over the frames where a face was found) and the embedders' own
    same-person score and threshold (:meth:`~ltxic.identity.embedders.IdentityModels.face_score`)."""

    def __init__(self, models: IdentityModels) -> None:
        self.models = models
        self.name = f"{models.kind} face embedder ({models.face.name})"
        self.threshold = float(models.face_threshold)

    def embed(self, frames: np.ndarray) -> np.ndarray | None:
        emb, found = self.models.face_frames(np.asarray(frames))
        if not np.asarray(found).any():
            return None
        mean = np.asarray(emb)[np.asarray(found, bool)].mean(0)
        if getattr(self.models.face, "metric", "cosine") == "cosine":
            mean = mean / (np.linalg.norm(mean) + 1e-12)
        return mean

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.models.face_score(a, b))


def face_matcher(synthetic: bool, kind: str | Any = "auto") -> EmbedderFaceMatcher:
    """The matcher for clips of toy characters (``synthetic``: the toy embedders) or of real people (dlib); ``kind``
    overrides (see :func:`ltxic.identity.select.identity_models`). Raises ``MissingExtraError`` (an ImportError) when
    the real embedders are not installed."""
    return EmbedderFaceMatcher(identity_models(("toy" if synthetic else "real") if kind == "auto" else kind))
