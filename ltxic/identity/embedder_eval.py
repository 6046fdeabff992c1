"""How well do the identity embedders verify people? Measured offline, on what can be had here.

* Faces: photographs that installed packages ship (Grace Hopper in matplotlib's sample data, astronaut Eileen
  Collins in scikit-image's), each in many augmented versions (crop, scale, rotation, mirror, light, blur, JPEG),
  against each other and against toy renders. Genuine pairs are two augmentations of the *same photograph*:
  easier than two photos of one person, so the numbers bound the embedder's accuracy from the easy side.
* Voices: espeak-ng speakers (a language voice with a variant: pitch, formants, synthesizer), several sentences
  each at different speeds. Synthetic speakers differ more cleanly than people do.

``python -m ltxic.identity.embedder_eval --out benchmarks/results/identity_embedders.json`` runs both for the real
embedders (``--kind``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ltxic.identity.embedders import IdentityModels, PathLike
from ltxic.identity.select import identity_models
from ltxic.identity.toy_embedders import equal_error_rate

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We walked along the quiet beach until the sun went down behind the hills.",
    "A large rainbow appeared in the sky after the summer storm had passed.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack.",
    "The museum opens at nine and closes early on every second Sunday of the month.",
)
# espeak-ng speakers: language voice + variant (pitch range, formants, and for klatt* another synthesizer)
VOICES = ("en-us+m1", "en-us+m3", "en-us+m5", "en-us+m7", "en-us+f1", "en-us+f2", "en-us+f4",
          "en-gb+m2", "en-gb+f3", "en-us+klatt", "en-us+klatt4", "en-gb-scotland+m4")


# ---------------------------------------------------------------------------------------------- photos
def package_photos() -> dict[str, np.ndarray]:
    """Portraits shipped inside installed packages: {"hopper": matplotlib's, "collins": scikit-image's (when
    installed)}, uint8 RGB."""
    import matplotlib

    from ltxic.io.media import read_image

    photos = {"hopper": read_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")}
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
        if path.is_file():
            photos["collins"] = read_image(path)
    return photos


def augment(image: np.ndarray, rng: np.random.Generator, size: int = 360) -> np.ndarray:
    """A randomly varied square view of a portrait: crop and scale, rotation up to 10 degrees, mirror, brightness
    and contrast, blur, sensor noise and JPEG compression."""
    import cv2

    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.75, 1.0))
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    img = cv2.resize(image[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-10, 10)), float(rng.uniform(0.9, 1.1)))
    img = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    f = img.astype(np.float32) * rng.uniform(0.7, 1.25) + rng.uniform(-25, 25)
    f = (f - f.mean()) * rng.uniform(0.75, 1.2) + f.mean()
    sigma = rng.uniform(0, 1.5)
    if sigma > 0.3:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    f = np.clip(f + rng.normal(0, rng.uniform(0, 6), f.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def toy_faces(n: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """``n`` toy portraits of held-out toy identities, 256 px, and their rule-located face boxes."""
    import cv2

    from ltxic.identity.toy_embedders import HELD_OUT_SEED_BASE
    from ltxic.toy.identity import make_identity
    from ltxic.toy.locate import locate_face
    from ltxic.toy.render import render_portrait

    imgs, boxes = [], []
    for i in range(n):
        img = cv2.resize(render_portrait(make_identity(HELD_OUT_SEED_BASE + 500 + seed * 1000 + i)), (256, 256),
                         interpolation=cv2.INTER_CUBIC)
        box = locate_face(img)
        if box is not None:
            imgs.append(img)
            boxes.append(box)
    return np.stack(imgs), boxes


def score_matrix(m: IdentityModels, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Face scores of every row of ``a`` against every row of ``b`` (:meth:`IdentityModels.face_score`)."""
    return np.stack([m.face_score(b, x) for x in a]) if len(a) else np.zeros((0, len(b)), np.float32)


def _pairs(emb: np.ndarray, labels: np.ndarray, m: IdentityModels | None = None) -> tuple[np.ndarray, np.ndarray]:
    sim = score_matrix(m, emb, emb) if m is not None else emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    same = labels[:, None] == labels[None, :]
    return sim[iu][same[iu]], sim[iu][~same[iu]]


def _stats(same: np.ndarray, diff: np.ndarray) -> dict[str, Any]:
    eer, thr = equal_error_rate(same, diff)
    return {"eer": round(eer, 4), "threshold": round(thr, 4), "genuine_pairs": int(len(same)),
            "impostor_pairs": int(len(diff)), "mean_genuine": round(float(np.mean(same)), 4),
            "min_genuine": round(float(np.min(same)), 4), "mean_impostor": round(float(np.mean(diff)), 4),
            "max_impostor": round(float(np.max(diff)), 4)}


def face_verification(models: IdentityModels | str = "real", views: int = 12, toy: int = 8, seed: int = 0) -> dict[str, Any]:
    """Genuine/impostor cosines of ``views`` augmentations per package photo, and against ``toy`` toy faces
    (embedded from their known boxes: the real detector finds no face in a cartoon)."""
    m = identity_models(models)
    rng = np.random.default_rng(seed)
    photos = package_photos()
    embs, labels, found, tried = [], [], 0, 0
    for k, (name, photo) in enumerate(photos.items()):
        for _ in range(views):
            view = augment(photo, rng)
            emb, ok = m.face_frames(view[None])
            tried += 1
            if ok[0]:
                found += 1
                embs.append(emb[0])
                labels.append(k)
    embs_a, labels_a = np.stack(embs), np.array(labels)
    same, diff_people = _pairs(embs_a, labels_a, m)
    toy_imgs, toy_boxes = toy_faces(toy, seed)
    toy_emb = m.face.embed(toy_imgs, toy_boxes)
    diff_toy = score_matrix(m, embs_a, toy_emb).ravel()
    toy_found = int(sum(b is not None for b in m.locator.locate(toy_imgs)))
    out: dict[str, Any] = {
        "embedders": m.describe(), "photos": sorted(photos), "views_per_photo": views,
        "faces_found": f"{found}/{tried} augmented views", "toy_faces": len(toy_imgs),
        "toy_faces_found_by_locator": f"{toy_found}/{len(toy_imgs)}",
        "photo_vs_toy": _stats(same, diff_toy),
    }
    if len(diff_people):
        out["photo_vs_photo"] = _stats(same, diff_people)
    out["all_impostors"] = _stats(same, np.concatenate([diff_people, diff_toy]))
    return out


# ---------------------------------------------------------------------------------------------- voices
def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str, speed: int = 160, pitch: int | None = None) -> tuple[np.ndarray, int]:
    """Speech from espeak-ng (argument list, no shell): (float32 mono waveform, sample rate)."""
    import soundfile as sf

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed; on Debian/Ubuntu: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        args = [exe, "-v", voice, "-s", str(int(speed)), "-w", str(out)]
        if pitch is not None:
            args += ["-p", str(int(pitch))]
        subprocess.run([*args, text], check=True, capture_output=True, timeout=60)
        wave, sr = sf.read(str(out), dtype="float32", always_2d=True)
    return wave.mean(1), int(sr)


def voice_verification(models: IdentityModels | str = "real", voices: Sequence[str] = VOICES,
                       utterances: int = 4, seed: int = 0) -> dict[str, Any]:
    """Genuine/impostor cosines of utterance embeddings: ``utterances`` sentences per espeak-ng speaker, each at
    its own speed (140-185 words per minute); the speaker's pitch is its own."""
    m = identity_models(models)
    rng = np.random.default_rng(seed)
    embs, labels = [], []
    for k, voice in enumerate(voices):
        for j in range(utterances):
            text = SENTENCES[(k + j) % len(SENTENCES)]
            wave, sr = espeak(text, voice, speed=int(rng.integers(140, 186)))
            embs.append(m.voice_reference(wave, sr, source=f"espeak-ng {voice}"))
            labels.append(k)
    same, diff = _pairs(np.stack(embs), np.array(labels))
    return {"embedders": m.describe(), "speakers": list(voices), "utterances_per_speaker": utterances,
            "sentences": len(SENTENCES), "utterance": _stats(same, diff)}


# ---------------------------------------------------------------------------------------------- a real-footage set
PHOTO_SUBJECTS = {
    "hopper": ("Grace Hopper (public-domain US Navy photograph shipped with matplotlib; the voice is espeak-ng's, not hers)",
               "en-us+f2"),
    "collins": ("Eileen Collins (public-domain NASA photograph shipped with scikit-image; the voice is espeak-ng's, not hers)",
                "en-gb+m2"),
}


def photo_footage(folder: PathLike, seconds: float = 3.0, fps: float = 24.0, size: int = 256, clips: int = 2) -> Path:
    """A small real-footage folder for ``ltxic pair`` from the package photos (:func:`package_photos`): per person
    ``clips`` mp4 clips of the photo in a slow pan and zoom with espeak-ng speech as the audio (the mouth does not
    move: a photograph), a caption ``.txt`` beside each, 8 s of other espeak-ng speech in ``voice/`` and
    ``consent.yaml``. The consent records say what the media are: public-domain photographs, synthetic voices, for
    metric tests only. Needs espeak-ng. Returns ``folder``."""
    import cv2
    import yaml

    from ltxic.io.media import resample, write_audio, write_video

    folder = Path(folder)
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    (folder / "voice").mkdir(parents=True, exist_ok=True)
    photos = package_photos()
    n = int(round(seconds * fps)) // 8 * 8 + 1
    consent = {}
    for name, photo in photos.items():
        subject, voice = PHOTO_SUBJECTS[name]
        h, w = photo.shape[:2]
        for c in range(clips):
            zoom = np.linspace(1.0, 0.88 - 0.04 * c, n)
            pan = np.linspace(-0.03, 0.03, n) * (1 if c % 2 == 0 else -1)
            frames = []
            for z, p in zip(zoom, pan):
                side = int(min(h, w) * z)
                cx = int(np.clip(w / 2 + p * w, side / 2, w - side / 2))
                cy = int(np.clip(h / 2, side / 2, h - side / 2))
                crop = photo[cy - side // 2: cy - side // 2 + side, cx - side // 2: cx - side // 2 + side]
                frames.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
            text = " ".join(SENTENCES[(c + k) % len(SENTENCES)] for k in range(2))
            wave, sr = espeak(text, voice, speed=175)
            wave16 = resample(wave[None], sr, 16000)[0].numpy()
            need = int(round(n / fps * 16000))
            wave16 = np.pad(wave16, (0, max(0, need - len(wave16))))[:need]
            stem = f"{name}_{c:03d}"
            write_video(folder / "clips" / f"{stem}.mp4", np.stack(frames), fps, wave16[None], 16000)
            (folder / "clips" / f"{stem}.txt").write_text("A person looks at the camera while speaking, close-up.\n")
        ref, sr = espeak(" ".join(SENTENCES[3:5]), voice, speed=165)
        write_audio(folder / "voice" / f"{name}_0.wav", ref[None], sr)
        consent[name] = {"subject": subject, "granted_by": "nobody: a public-domain photograph, used only to test metrics",
                         "media": ["face", "voice"], "date": "2026-11-28",
                         "scope": "tests of ltxic's identity metrics only; never for training or generation"}
    (folder / "consent.yaml").write_text(yaml.safe_dump(consent, sort_keys=False))
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.identity.embedder_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="real", choices=("real", "toy"))
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--toy", type=int, default=16)
    parser.add_argument("--utterances", type=int, default=6)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    import platform
    import time

    from ltxic.io.files import write_json_atomic

    t0 = time.time()
    result: dict[str, Any] = {"command": " ".join(["python -m ltxic.identity.embedder_eval", *sys.argv[1:]]),
                              "machine": platform.processor() or platform.machine()}
    result["face"] = face_verification(args.kind, args.views, args.toy)
    result["face_seconds"] = round(time.time() - t0, 1)
    t1 = time.time()
    if espeak_available():
        result["voice"] = voice_verification(args.kind, utterances=args.utterances)
        result["voice_seconds"] = round(time.time() - t1, 1)
    else:
        result["voice"] = "skipped: espeak-ng is not installed (apt-get install espeak-ng)"
    print(json.dumps(result, indent=1))
    if args.out:
        write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

