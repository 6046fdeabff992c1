"""Write toy datasets: clips (mp4), reference portraits (jpg), voice clips (wav) and dataset.json.

``python -m ltxic.toy.make_samples --out data_samples`` regenerates the course's shipped samples bit for bit;
:func:`make_dataset` (``ltxic toy make-dataset``) writes bigger ones.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ltxic.io.progress import progress as tqdm

from ltxic.io.files import atomic_path, write_json_atomic
from ltxic.io.media import write_audio, write_image, write_video
from ltxic.toy.identity import Identity, identity_from_name, make_identity
from ltxic.toy.render import check_geometry, render_clip, render_portrait
from ltxic.toy.scene import ACTIONS, random_scene
from ltxic.toy.voice import synthesize_speech

SAMPLE_TRAIN = ("ava", "bo", "ned")
SAMPLE_EVAL = ("dex",)
CONSENT_DATE = "2026-11-24"


def consent_record(identity: Identity) -> dict:
    return {
        "subject": f"{identity.name.capitalize()} (synthetic toy character)",
        "granted_by": "ltxic toy generator",
        "media": ["face", "voice"],
        "date": CONSENT_DATE,
        "scope": "training and evaluation in the ltxic course",
        "synthetic": True,
    }


def toy_rules(width: int, height: int, frames: int, fps: float = 24.0) -> dict:
    """The ``rules`` block of a toy dataset.json: its clips are short by design (49 frames at 24 fps = 2 s, under
    the 3 s guidance for real footage; the tests' 17-frame clips last 0.71 s) and rendered at exactly one training
    bucket, so the minimum length is the rendered one (at most 1 s): a toy dataset passes its own rules."""
    shortest = min(1.0, int(frames / fps * 100) / 100)
    return {"clip_seconds": [shortest, 10.0], "buckets": [f"{width}x{height}x{frames}"]}


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def write_voice(path: Path, identity: Identity, seconds: float, seed: int, sample_rate: int = 16000) -> Path:
    """A clean voice recording of ``identity`` (speech with natural pauses) as 16-bit wav."""
    rng = np.random.default_rng([0x701CE, seed, identity.seed])
    audio, _ = synthesize_speech(identity, int(seconds * sample_rate), rng, sample_rate)
    return write_audio(path, audio[None], sample_rate)


def make_dataset(
    out: str | Path,
    train: Sequence[Identity],
    held_out: Sequence[Identity] = (),
    *,
    clips_per_identity: int = 12,
    eval_clips: int | None = None,
    width: int = 128,
    height: int = 128,
    frames: int = 49,
    fps: float = 24.0,
    sample_rate: int = 16000,
    voice_clips: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Render a dataset of toy identities into ``out`` and write ``out/dataset.json``; returns that path.

    Every identity gets a reference portrait, ``voice_clips`` voice recordings (6-9 s) and clips whose actions
    cycle through the vocabulary; the ``held_out`` identities form the ``eval`` split. Also writes
    ``out/truth.json``: the identities' traits and each clip's per-frame ground truth.
    """
    check_geometry(width, height, frames)
    out = Path(out)
    eval_clips = clips_per_identity if eval_clips is None else eval_clips
    plan = [(i, "train", clips_per_identity) for i in train] + [(i, "eval", eval_clips) for i in held_out]
    names = [i.name for i, _, _ in plan]
    if len(set(names)) != len(names):
        raise ValueError(f"identities: names must be unique, got {names}")
    dataset = {"version": 1, "rules": toy_rules(width, height, frames, fps), "identities": {}, "entries": []}
    truth = {"identities": {}, "clips": {}}
    total = sum(n for _, _, n in plan)
    with tqdm(total=total, desc="toy clips", unit="clip", disable=not progress) as bar:
        for identity, split, n_clips in plan:
            name = identity.name
            dataset["identities"][name] = {"consent": consent_record(identity)}
            truth["identities"][name] = identity.to_dict()
            write_image(out / "refs" / f"{name}.jpg", render_portrait(identity, width, height))
            for j in range(voice_clips):
                seconds = 6.0 + 3.0 * ((j * 0.618 + identity.seed % 7 / 7) % 1.0)
                write_voice(out / "voice" / f"{name}_{j}.wav", identity, round(seconds, 2), _seed(seed, name, "voice", j), sample_rate)
            offset = identity.seed % len(ACTIONS)
            for k in range(n_clips):
                clip_seed = _seed(seed, name, k)
                scene = random_scene(np.random.default_rng([0x5CE, clip_seed]), action=ACTIONS[(k + offset) % len(ACTIONS)])
                clip = render_clip(identity, scene, seed=clip_seed, width=width, height=height, frames=frames, fps=fps, sample_rate=sample_rate)
                rel = f"clips/{name}_{k:03d}.mp4"
                write_video(out / rel, clip.frames, fps, clip.audio, sample_rate)
                dataset["entries"].append({
                    "identity": name, "video_path": rel, "reference_image": f"refs/{name}.jpg",
                    "reference_audio": f"voice/{name}_{k % max(1, voice_clips)}.wav", "caption": clip.caption, "split": split,
                })
                truth["clips"][rel] = {"seed": clip_seed, "identity": name, "scene": scene.__dict__, **clip.truth.to_dict()}
                bar.update(1)
    write_json_atomic(out / "truth.json", truth)
    return write_json_atomic(out / "dataset.json", dataset)


def make_bad_dataset(out: str | Path, *, width: int = 128, height: int = 128, fps: float = 24.0, sample_rate: int = 16000) -> Path:
    """``out/dataset_bad.json``: real files with planted problems for the validation lessons (needs dataset.json)."""
    out = Path(out)
    good = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    train = [e for e in good["entries"] if e["split"] == "train"]
    first, second = train[0], train[1]
    ident = {name: good["identities"][name] for name in dict.fromkeys((first["identity"], second["identity"]))}

    # a clip shorter than a second: 9 frames (valid 8k+1 geometry, but too short to learn motion from)
    who = identity_from_name(first["identity"])
    from ltxic.toy.scene import Scene

    short = render_clip(who, Scene("blue", "bright", "close-up", "speaks"), seed=_seed("bad", "short"), width=width, height=height, frames=9, fps=fps, sample_rate=sample_rate)
    write_video(out / "bad" / "short_clip.mp4", short.frames, fps, short.audio, sample_rate)
    write_audio(out / "bad" / "silent_voice.wav", np.zeros((1, 6 * sample_rate), np.float32), sample_rate)
    # an identity whose media exist but who has no consent record
    zed = identity_from_name("zed")
    zclip = render_clip(zed, Scene("teal", "bright", "close-up", "nods"), seed=_seed("bad", "zed"), width=width, height=height, frames=49, fps=fps, sample_rate=sample_rate)
    write_video(out / "bad" / "zed_000.mp4", zclip.frames, fps, zclip.audio, sample_rate)
    write_image(out / "bad" / "zed.jpg", render_portrait(zed, width, height))
    write_voice(out / "bad" / "zed_0.wav", zed, 6.0, _seed("bad", "zed", "voice"), sample_rate)
    ident["zed"] = {}

    def entry(base: dict, **changes) -> dict:
        return {**{k: base[k] for k in ("identity", "video_path", "reference_image", "reference_audio", "caption", "split")}, **changes}

    hair = identity_from_name(first["identity"]).hair
    entries = [
        entry(first),
        entry(second),
        entry(first, caption=f"A woman with {hair} hair and blue eyes speaks in a bright blue room, close-up."),
        entry(second, caption="A person moving naturally."),
        entry(first, video_path="bad/short_clip.mp4", caption="A person speaks in a bright blue room, close-up."),
        entry(second, reference_audio="bad/silent_voice.wav"),
        entry(first, video_path="clips/missing_clip.mp4"),
        {"identity": "zed", "video_path": "bad/zed_000.mp4", "reference_image": "bad/zed.jpg",
         "reference_audio": "bad/zed_0.wav", "caption": zclip.caption, "split": "train"},
    ]
    problems = [
        {"entry": 2, "field": "caption", "problem": "trait_caption",
         "detail": "describes the person's appearance (gender, hair and eye colour); traits come from the reference image, captions say scene and action"},
        {"entry": 3, "field": "caption", "problem": "vague_motion",
         "detail": "'moving naturally' names no concrete motion and no scene; say what moves and how, e.g. 'slowly turns head left while speaking'"},
        {"entry": 4, "field": "video_path", "problem": "clip_too_short",
         "detail": f"9 frames at {fps:g} fps = {9 / fps:.2f} s, under the 1 s minimum"},
        {"entry": 4, "field": "video_path", "problem": "too_few_frames",
         "detail": f"9 frames, fewer than the bucket's {good['rules']['buckets'][0]}: no training window fits"},
        {"entry": 5, "field": "reference_audio", "problem": "silent_reference_audio",
         "detail": "the voice reference is 6 s of digital silence: no voice to learn from"},
        {"entry": 6, "field": "video_path", "problem": "missing_file", "detail": "clips/missing_clip.mp4 does not exist"},
        {"entry": 7, "field": "identity", "problem": "missing_consent",
         "detail": "identity 'zed' has no consent record in 'identities'; its media must not be used"},
    ]
    bad = {"version": 1, "rules": good["rules"], "identities": ident, "entries": entries, "planted_problems": problems}
    return write_json_atomic(out / "dataset_bad.json", bad)


def contact_sheet(dataset_json: str | Path, out_png: str | Path, clips_per_identity: int = 3) -> Path:
    """A PNG grid: for each identity a few clips (start, middle, end frames) with the caption under each."""
    from PIL import Image, ImageDraw, ImageFont

    from ltxic.io.media import read_image, read_video

    root = Path(dataset_json).parent
    data = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    by_identity: dict[str, list[dict]] = {}
    for e in data["entries"]:
        by_identity.setdefault(e["identity"], []).append(e)
    font = ImageFont.load_default(size=11)
    rows = []
    for name, entries in by_identity.items():
        picks = [entries[round(i * (len(entries) - 1) / max(1, clips_per_identity - 1))] for i in range(min(clips_per_identity, len(entries)))]
        ref = read_image(root / entries[0]["reference_image"])
        h, w = ref.shape[:2]
        cell_w, text_h = 3 * w + 6, 30
        row = Image.new("RGB", (w + 10 + len(picks) * (cell_w + 10), h + text_h + 16), "white")
        draw = ImageDraw.Draw(row)
        row.paste(Image.fromarray(ref), (0, 14))
        draw.text((0, 0), f"{name} ({entries[0]['split']})", fill="black", font=font)
        draw.text((0, h + 16), "reference", fill="black", font=font)
        for j, e in enumerate(picks):
            video = read_video(root / e["video_path"])
            x = w + 10 + j * (cell_w + 10)
            for k, f in enumerate((0, len(video) // 2, len(video) - 1)):
                row.paste(Image.fromarray(video[f]), (x + k * (w + 3), 14))
            draw.text((x, 0), e["video_path"], fill="black", font=font)
            words, lines = e["caption"].split(), [""]
            for word in words:
                if draw.textlength(lines[-1] + " " + word, font=font) > cell_w:
                    lines.append(word)
                else:
                    lines[-1] = (lines[-1] + " " + word).strip()
            draw.multiline_text((x, h + 16), "\n".join(lines[:2]), fill="black", font=font, spacing=1)
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return Path(out_png)


def make_samples(out: str | Path = "data_samples", seed: int = 0, progress: bool = True) -> Path:
    """The shipped samples: 3 training identities x 14 clips, 1 held-out identity x 4, bad entries, contact sheet."""
    out = Path(out)
    path = make_dataset(
        out, [identity_from_name(n) for n in SAMPLE_TRAIN], [identity_from_name(n) for n in SAMPLE_EVAL],
        clips_per_identity=14, eval_clips=4, seed=seed, progress=progress,
    )
    make_bad_dataset(out)
    contact_sheet(path, out / "contact_sheet.png")
    return path


def random_identities(n: int, seed: int, prefix: str = "id") -> list[Identity]:
    """``n`` identities drawn from ``seed`` (names ``id000``...)."""
    return [make_identity(_seed("identity", seed, i), name=f"{prefix}{i:03d}") for i in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.toy.make_samples", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data_samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = make_samples(args.out, args.seed)
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s; {args.out} holds {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
