"""The toy world's embedders (:mod:`ltxic.identity.toy_embedders`) behind the shared :class:`IdentityModels`
interface: the ``toy`` kind of :func:`ltxic.identity.select.identity_models`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ltxic.identity.embedders import Box, IdentityModels, SilentAudioError, source_label

class _ToyLocator:
    """The toy world's learned locator (decoded frames too), or the rule-based one where none is shipped."""

    def __init__(self, learned: Any, name: str) -> None:
        self.learned, self.name = learned, name

    def locate(self, frames: np.ndarray) -> list[Box | None]:
        from ltxic.toy.locate import locate_faces

        return locate_faces(frames, self.learned)

    def mouth_aperture(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        """Share of the lower face that is dark mouth interior (the toy mouth opens with the speech envelope)."""
        out = np.full(len(frames), np.nan, np.float32)
        for i, (frame, box) in enumerate(zip(frames, boxes)):
            if box is None:
                continue
            x0, y0, x1, y1 = box
            face = np.asarray(frame[max(0, y0):y1, max(0, x0):x1], np.float32)
            h, w = face.shape[:2]
            if h < 6 or w < 6:
                continue
            luma = face @ np.array([0.299, 0.587, 0.114], np.float32)
            yy, xx = np.mgrid[0:h, 0:w]
            inner = (((xx + 0.5 - w / 2) / (0.42 * w)) ** 2 + ((yy + 0.5 - h / 2) / (0.5 * h)) ** 2) <= 1
            lower = inner & (yy >= 0.5 * h)
            skin = float(np.median(luma[inner]))
            out[i] = float((luma[lower] < 0.5 * skin).sum()) / float(lower.sum() or 1)
        return out


class _ToyFace:
    def __init__(self, embedder: Any) -> None:
        self.model, self.name, self.dim = embedder, "ltxic toy face CNN (64-d)", 64

    def embed(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        from ltxic.identity.toy_embedders import face_crop

        emb = np.full((len(frames), self.dim), np.nan, np.float32)
        idx = [i for i, b in enumerate(boxes) if b is not None]
        if idx:
            crops = np.stack([face_crop(frames[i], boxes[i], self.model.size) for i in idx])
            emb[idx] = self.model.embed_crops(crops)
        return emb


class _ToyVoice:
    name, dim, window_s, min_sample_rate = "ltxic toy voice CNN (64-d)", 64, 1.0, 1

    def __init__(self, embedder: Any) -> None:
        from ltxic.identity.toy_embedders import SAMPLE_RATE

        self.model, self.sample_rate = embedder, SAMPLE_RATE

    def embed(self, windows: np.ndarray) -> np.ndarray:
        return self.model.embed_waves(windows)

    def embed_utterance(self, wave: np.ndarray) -> np.ndarray:
        return self.model.embed_reference(wave, self.sample_rate)


class ToyModels(IdentityModels):
    """The toy embedders through the shared interface; face, reference and voice paths are exactly the
    toy world's own (:meth:`ltxic.identity.toy_embedders.Embedders.face_frames`, ``VoiceEmbedder.embed_reference``...)."""

    def __init__(self, toy: Any) -> None:
        self.toy = toy
        learned = _ToyLocator(toy.locator, "toy learned locator" if toy.locator is not None else "toy rule-based locator")
        thresholds = _toy_thresholds()
        super().__init__("toy", _ToyFace(toy.face), _ToyVoice(toy.voice), learned, thresholds[0], thresholds[1],
                         reference_locator=_ToyLocator(None, "toy rule-based locator"),
                         notes={"measured": "data_samples/tiny/embedders_record.json (held-out toy identities)"})

    def voice_windows(self, waveform, sr, window_s=None, hop_s=None, source=None):  # noqa: ANN001, ANN201
        return self.toy.voice.embed_windows(waveform, sr, 1.0 if window_s is None else window_s,
                                            0.5 if hop_s is None else hop_s)

    def _voice_reference(self, waveform, sr, source=None):  # noqa: ANN001, ANN201
        try:
            return self.toy.voice.embed_reference(waveform, sr)
        except ValueError as err:
            raise SilentAudioError(f"reference_audio ({source_label(source)}): {err}") from err


def _toy_thresholds() -> tuple[float, float]:
    from ltxic.identity.toy_embedders import DEFAULT_DIR, RECORD_FILE

    try:
        rec = json.loads((DEFAULT_DIR / RECORD_FILE).read_text())["held_out"]
        return float(rec["face"]["threshold"]), float(rec["voice"]["threshold"])
    except (OSError, KeyError, ValueError):
        return float("nan"), float("nan")


__all__ = ["ToyModels"]
