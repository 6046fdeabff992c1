"""How far the real embedders' same-person thresholds sit from the cases that decide, on what can be had offline.

* Faces (dlib, same person below Euclidean distance 0.6: dlib's published operating point): views of the two package
  photographs (:func:`ltxic.identity.embedder_eval.package_photos`) against each photograph's own reference (genuine)
  and the other's (wrong person), and the 100 real faces of scikit-image's ``lfw_subset`` (Labeled Faces in the Wild,
  25x25 grey, upscaled) against each reference. Each is given as distance, as ltxic's score (``1 - d**2/2``) and, for
  comparison with the former threshold, as the cosine of the unit-length descriptors.
* Voices (GE2E, cosine): espeak-ng speakers, one reference utterance each, against test utterances of the same and of
  the other speakers in four conditions: clean at another speed, with noise at 20 dB SNR, 20 dB quieter, and
  resampled through 8 kHz (which the voice check refuses, naming the rate, instead of scoring it).

``python -m ltxic.identity.margins --out benchmarks/results/identity_margins.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ltxic.identity.embedder_eval import SENTENCES, VOICES, augment, espeak, package_photos
from ltxic.identity.embedders import SampleRateError
from ltxic.identity.select import identity_models

__all__ = ["face_margins", "lfw_faces", "main", "voice_margins"]


def lfw_faces(size: int = 200) -> np.ndarray:
    """scikit-image's 100 Labeled-Faces-in-the-Wild crops (25x25 grey), upscaled to ``size`` px RGB uint8."""
    import cv2
    from skimage.data import lfw_subset

    faces = lfw_subset()[:100]  # the first 100 are faces, the rest not
    up = [cv2.resize((f * 255).round().astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC) for f in faces]
    return np.stack([np.repeat(u[..., None], 3, axis=2) for u in up])


def _summary(scores: np.ndarray, threshold: float, same: bool, cosines: np.ndarray | None = None) -> dict[str, Any]:
    d = np.sqrt(np.maximum(0.0, 2.0 * (1.0 - scores)))
    out: dict[str, Any] = {"pairs": int(len(scores)), "distance_min": round(float(d.min()), 4),
                           "distance_max": round(float(d.max()), 4), "score_min": round(float(scores.min()), 4),
                           "score_max": round(float(scores.max()), 4)}
    wrong = (scores < threshold) if same else (scores >= threshold)
    out["rejected" if same else "accepted"] = int(wrong.sum())
    if cosines is not None:
        out["cosine_min" if same else "cosine_max"] = round(float(cosines.min() if same else cosines.max()), 4)
    return out


def face_margins(views: int = 12, seed: int = 0) -> dict[str, Any]:
    """Genuine, wrong-person and LFW distances against each package photograph's reference embedding."""
    m = identity_models("real")
    rng = np.random.default_rng(seed)
    photos = package_photos()
    refs = {name: m.face_reference(photo, name) for name, photo in photos.items()}
    unit = {k: v / np.linalg.norm(v) for k, v in refs.items()}
    genuine, wrong, gcos, wcos = [], [], [], []
    for name, photo in photos.items():
        for _ in range(views):
            emb, found = m.face_frames(augment(photo, rng)[None])
            if not found[0]:
                continue
            e = emb[0]
            for other, ref in refs.items():
                (genuine if other == name else wrong).append(float(m.face_score(e, ref)))
                (gcos if other == name else wcos).append(float(e @ unit[other] / np.linalg.norm(e)))
    lfw = lfw_faces()
    emb, found = m.face_frames(lfw)
    lfw_emb = emb[np.asarray(found, bool)]
    out: dict[str, Any] = {
        "embedder": m.face.name, "threshold_distance": 0.6, "threshold_score": round(float(m.face_threshold), 4),
        "threshold_source": "dlib's published operating point (Euclidean distance 0.6 of the raw 128-d descriptors)",
        "descriptor_norms": [round(float(np.linalg.norm(v)), 3) for v in refs.values()],
        "photos": sorted(photos), "views_per_photo": views,
        "genuine_views": _summary(np.array(genuine), m.face_threshold, True, np.array(gcos)),
        "wrong_person_views": _summary(np.array(wrong), m.face_threshold, False, np.array(wcos)),
        "lfw_faces_found": f"{len(lfw_emb)}/{len(lfw)}",
    }
    for name, ref in refs.items():
        s = m.face_score(lfw_emb, ref)
        cos = lfw_emb @ unit[name] / np.linalg.norm(lfw_emb, axis=1)
        out[f"lfw_vs_{name}"] = _summary(np.asarray(s, np.float64), m.face_threshold, False, cos)
    return out


def _conditions(wave: np.ndarray, sr: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, int]]:
    from ltxic.io.media import resample

    rms = float(np.sqrt(np.mean(wave**2)))
    low = resample(resample(wave[None], sr, 8000), 8000, 48000)[0].numpy()
    return {"clean": (wave, sr), "noise_20db": (wave + rng.normal(0, rms / 10, wave.shape).astype(np.float32), sr),
            "quiet_20db": (wave / 10, sr), "through_8khz": (low, 48000)}


def voice_margins(voices: Sequence[str] = VOICES, utterances: int = 3, seed: int = 0) -> dict[str, Any]:
    """Each speaker's reference (two sentences) against test utterances of every speaker in four conditions."""
    m = identity_models("real")
    rng = np.random.default_rng(seed)
    refs = {}
    for v in voices:
        wave, sr = espeak(" ".join(SENTENCES[3:5]), v, speed=165)
        refs[v] = m.voice_reference(wave, sr)
    by_cond: dict[str, dict[str, list[float]]] = {}
    refused: dict[str, int] = {}
    for v in voices:
        for j in range(utterances):
            wave, sr = espeak(SENTENCES[j % 3], v, speed=int(rng.integers(140, 186)))
            for cond, (w, r) in _conditions(wave, sr, rng).items():
                try:
                    emb = m.voice_reference(w, r)
                except SampleRateError:
                    refused[cond] = refused.get(cond, 0) + 1
                    # scored anyway (plain decimation to 16 kHz: nothing is above 4 kHz), to show what it used to score
                    emb = m.voice.embed_utterance(np.asarray(w, np.float32)[:: r // 16000])
                row = by_cond.setdefault(cond, {"genuine": [], "impostor": []})
                for other, ref in refs.items():
                    row["genuine" if other == v else "impostor"].append(float(emb @ ref))
    out: dict[str, Any] = {"embedder": m.voice.name, "threshold": m.voice_threshold, "speakers": list(voices),
                           "test_utterances_per_speaker": utterances}
    for cond, row in by_cond.items():
        g, i = np.array(row["genuine"]), np.array(row["impostor"])
        out[cond] = {"genuine_min": round(float(g.min()), 4), "genuine_mean": round(float(g.mean()), 4),
                     "impostor_max": round(float(i.max()), 4), "impostor_mean": round(float(i.mean()), 4),
                     "genuine_rejected": f"{int((g < m.voice_threshold).sum())}/{len(g)}",
                     "impostor_accepted": f"{int((i >= m.voice_threshold).sum())}/{len(i)}",
                     "refused_for_sample_rate": f"{refused.get(cond, 0)}/{len(g)}"}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.identity.margins", description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    from ltxic.io.files import write_json_atomic

    result = {"command": " ".join(["python -m ltxic.identity.margins", *(sys.argv[1:] if argv is None else argv)]),
              "face": face_margins(args.views), "voice": voice_margins(utterances=args.utterances)}
    print(json.dumps(result, indent=1))
    if args.out:
        write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
