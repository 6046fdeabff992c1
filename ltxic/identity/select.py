"""Which identity embedders score a dataset: the toy world's for a synthetic dataset, the real ones (or the
user's own weights) for real footage. ``kind`` (a function argument, ``ltxic validate --embedders``,
``validation.embedders`` in a training config) overrides the choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltxic.data.dataset import Dataset, load_dataset
from ltxic.identity.embedders import IdentityModels, PathLike
from ltxic.identity.toy_models import ToyModels

KINDS = ("auto", "real", "toy", "user")

def choose_kind(kind: str = "auto", dataset: Any = None) -> str:
    """``toy`` / ``real`` / ``user`` for ``kind="auto"``: toy when the dataset marks every identity synthetic,
    else real. With no dataset, auto means toy (the course's default world); real footage passes its dataset."""
    if kind not in KINDS:
        raise ValueError(f"embedders={kind!r}: use one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if dataset is None:
        return "toy"
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    return "toy" if ds.synthetic else "real"


_CACHE: dict[tuple, IdentityModels] = {}


def identity_models(kind: str | IdentityModels | Any | None = "auto", *, dataset: Any = None,
                    face_weights: PathLike | None = None, voice_weights: PathLike | None = None,
                    device: str = "cpu") -> IdentityModels:
    """The embedders for ``kind`` (see :func:`choose_kind`; None is ``"auto"``); an :class:`IdentityModels` or the toy world's
    :class:`~ltxic.identity.toy_embedders.Embedders` is wrapped and returned. ``face_weights`` (an ArcFace ONNX file) and
    ``voice_weights`` (an ECAPA folder) make the kind ``user``; models are loaded once per process."""
    if isinstance(kind, IdentityModels):
        return kind
    if kind is not None and not isinstance(kind, str):
        from ltxic.identity.toy_embedders import Embedders

        if isinstance(kind, Embedders):
            return ToyModels(kind)
        raise TypeError(f"embedders: expected a kind ({', '.join(KINDS)}), IdentityModels or toy Embedders, got {type(kind).__name__}")
    if (face_weights or voice_weights) and kind in (None, "auto"):
        kind = "user"
    resolved = choose_kind(kind or "auto", dataset)
    key = (resolved, str(face_weights), str(voice_weights), device)
    if key in _CACHE:
        return _CACHE[key]
    if resolved == "toy":
        from ltxic.identity.toy_embedders import load_embedders

        models: IdentityModels = ToyModels(load_embedders(device=device))
    elif resolved == "real":
        from ltxic.identity.real import real_models

        models = real_models(device)
    else:
        if not face_weights and not voice_weights:
            raise ValueError("embedders='user' needs face_weights (an ArcFace ONNX file, e.g. w600k_r50.onnx) and/or "
                             "voice_weights (a folder with an ECAPA embedding_model.ckpt); pass --face-weights / "
                             "--voice-weights or set validation.face_weights / validation.voice_weights")
        from ltxic.identity.user import user_models

        models = user_models(Path(face_weights) if face_weights else None,
                             Path(voice_weights) if voice_weights else None, device)
    _CACHE[key] = models
    return models


__all__ = ["KINDS", "choose_kind", "identity_models"]
