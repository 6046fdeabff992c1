"""Can sampling settings alone lift the tiny IC-LoRA's face similarity to issue 24's 0.65 with the scene kept?

Scores lesson 06's comparison (held-out identity ``dex``, lesson 06's two prompts, seeds 0-2, 128x128x25, the toy
embedders) for the LoRA checkpoints of the course's lesson-04 run, over the sampling steps, the face's identity
guidance (``reference_video``) and the video stream's text CFG. Run the course first (``ltxic course``), then::

    python benchmarks/identity_recipe_probe.py --run outputs/course/04_training

It also scores the held-out identity's own toy clips (``data_samples/clips/dex_*.mp4``, their first 25 frames), and dex
rendered by the toy world doing each sampled prompt, before and after a round trip through the tiny video codec: the
face similarity the codec alone leaves a perfect generation (``codec_ceiling``).

``--train-steps S`` first trains lesson 04's run (``tiny_cpu``, checkpoints every 100 steps) for ``S`` steps into
``--run``, on the shipped dataset or, with ``--extra-identities N --clips M``, on a toy dataset of the shipped
training identities plus ``N`` random ones, ``M`` clips each (dex held out, as shipped): does the LoRA generalise
better from more people, or from a longer run? ``--set KEY=VALUE`` changes that run's config (``lora.rank=64``,
``optimization.learning_rate=1e-3``: the LoRA's design). The probe then scores ``--checkpoints`` (default 200 and
300) over ``--settings`` (all by default; ``--settings 2`` scores lesson 06's setting on both checkpoints) at each
``--strengths`` of the LoRA.

Results: ``benchmarks/results/identity_recipe_probe.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data_samples"
OUT = ROOT / "benchmarks" / "results" / "identity_recipe_probe.json"
PROMPTS = ["A person slowly turns head left while speaking in a bright blue room, close-up.",
           "A person walks across from left to right while speaking in a dim teal room, medium shot."]
STILL = "A person speaks in a dim green room, close-up."  # lesson 05's still prompt: its face should travel < 0.1
# (which of --checkpoints: 0 = the first, lesson 05's pick by default, -1 = the last; sampling steps, face identity
# guidance, video text CFG); lesson 06's setting first
SETTINGS = [(0, 8, 3.0, 1.0), (-1, 8, 3.0, 1.0), (0, 16, 3.0, 1.0), (0, 8, 6.0, 1.0), (-1, 8, 4.0, 1.0),
            (-1, 8, 5.0, 1.0), (-1, 8, 3.0, 2.0), (-1, 8, 4.0, 2.0), (-1, 8, 6.0, 3.0), (-1, 8, 8.0, 1.0),
            (-1, 8, 10.0, 1.0)]


def codec_ceiling(prompts: list[str] | None = None, frames: int = 25, seeds: int = 4) -> list[dict]:
    """Face similarity a perfect generation could score: dex's own toy clips (``clip``) and, for each of ``prompts``, dex
    rendered by the toy world doing exactly that prompt (``prompt``, the mean over ``seeds`` renders), each as stored and
    after a round trip through the tiny video codec."""
    import torch

    from ltxic.identity.metrics import identity_scores
    from ltxic.io.media import read_video
    from ltxic.models.kit import Models
    from ltxic.sampling.generate import to_uint8_frames
    from ltxic.toy.identity import identity_from_name
    from ltxic.toy.render import render_clip
    from ltxic.toy.scene import Scene
    from ltxic.training.cache import video_pixels

    codec = Models.tiny(None).video_codec

    def scores(clips: list[np.ndarray]) -> dict:
        out = {"stored": [], "through_codec": []}
        for f in clips:
            with torch.no_grad():
                through = to_uint8_frames(codec.decode(codec.encode(video_pixels(f, f.shape[2], f.shape[1]))))
            for name, x in (("stored", f), ("through_codec", through)):
                out[name].append(identity_scores(x, DATA / "refs" / "dex.jpg", sync=False,
                                                 dataset=DATA / "dataset.json")["face_similarity"])
        return {name: round(float(np.mean(v)), 3) for name, v in out.items()}

    rows = [{"clip": clip.name, **scores([read_video(clip)[:frames]])} for clip in sorted((DATA / "clips").glob("dex_*.mp4"))]
    dex = identity_from_name("dex")
    for prompt in prompts or []:
        renders = [render_clip(dex, Scene.from_caption(prompt), seed=seed, frames=frames).frames for seed in range(seeds)]
        rows.append({"prompt": prompt, "renders": seeds, **scores(renders)})
    return rows


def train_run(run: Path, steps: int, extra: int = 0, clips: int = 4, overrides: dict | None = None) -> None:
    """Lesson 04's run for ``steps`` steps; with ``extra`` > 0 on the shipped training identities plus ``extra`` random
    ones (dex held out), else on the shipped dataset."""
    from ltxic.course.runner import lesson_training_config
    from ltxic.toy.identity import identity_from_name
    from ltxic.toy.make_samples import SAMPLE_EVAL, SAMPLE_TRAIN, make_dataset, random_identities
    from ltxic.training.trainer import train

    dataset = DATA / "dataset.json"
    if extra:
        people = [identity_from_name(n) for n in SAMPLE_TRAIN] + random_identities(extra, seed=7)
        dataset = make_dataset(run / "data", people, [identity_from_name(n) for n in SAMPLE_EVAL],
                               clips_per_identity=clips, eval_clips=4, progress=False)
    train(lesson_training_config(run, steps=steps, dataset_file=dataset, validation_interval=0, overrides=overrides))


def parse_overrides(pairs: list[str]) -> dict:
    """``["lora.rank=64", "lora.target_modules=[to_q,to_k]"]`` -> config overrides (values parsed as YAML)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. lora.rank=64")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from ltxic.identity.evaluate import Condition, identity_eval
    from ltxic.identity.motion import expects_travel, face_travel
    from ltxic.io.files import sha256_file
    from ltxic.models.transformer import default_tiny_dir
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.sampling.guidance import Guidance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=str(ROOT / "outputs" / "course" / "04_training"), help="lesson 04's run folder")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--train-steps", type=int, default=0, help="train lesson 04's run first, for this many steps")
    p.add_argument("--extra-identities", type=int, default=0, help="train on this many more toy identities")
    p.add_argument("--clips", type=int, default=4, help="clips per training identity (with --extra-identities)")
    p.add_argument("--checkpoints", type=int, nargs="+", default=[200, 300], help="the run's checkpoint steps to score")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for the training")
    p.add_argument("--settings", type=int, default=len(SETTINGS), help="score the first N sampling settings")
    p.add_argument("--face-guidance", type=float, nargs="+", metavar="G",
                   help="instead of --settings: lesson 06's setting (8 steps, video CFG 1) on both checkpoints at each "
                        "of these face identity guidances (reference_video)")
    p.add_argument("--strengths", type=float, nargs="+", default=[1.0], help="LoRA strengths to score")
    p.add_argument("--still", action="store_true", help="also sample lesson 05's still prompt (seeds 0-2) and "
                   "record its face travel (the walk's should be >= 0.25, the still one's < 0.1)")
    p.add_argument("--extra-prompts", nargs="+", default=[], metavar="PROMPT",
                   help="also sample these (seeds 0-2): in face_by_prompt and travel_by_prompt, not in the means")
    p.add_argument("--frames", type=int, default=25, help="frames per sampled clip (lesson 06: 25)")
    args = p.parse_args(argv)
    if args.train_steps:
        train_run(Path(args.run), args.train_steps, args.extra_identities, args.clips, parse_overrides(args.set))
    prompts = PROMPTS + ([STILL] if args.still else []) + args.extra_prompts
    ceiling = codec_ceiling(prompts, args.frames)
    print(json.dumps(ceiling), flush=True)
    rows = []
    settings = ([(which, 8, g, 1.0) for g in args.face_guidance for which in (0, -1)] if args.face_guidance
                else SETTINGS[:args.settings])
    for (which, steps, face_guidance, cfg), strength in ((s, w) for s in settings for w in args.strengths):
        ckpt = args.checkpoints[which]
        lora = Path(args.run) / "checkpoints" / f"step_{ckpt:06d}" / "lora.safetensors"
        if not lora.is_file():
            raise SystemExit(f"{lora} is missing: run the course (`ltxic course`) first, or give --run")
        t0 = time.perf_counter()
        guidance = Guidance.for_kit("tiny").with_overrides(reference_video=face_guidance, video_cfg=cfg)
        config = GenerateConfig(width=128, height=128, frames=args.frames, steps=steps, guidance=guidance)
        every = identity_eval(None, lora, dataset=DATA / "dataset.json", identity="dex",
                              reference_image=DATA / "refs" / "dex.jpg", reference_audio=DATA / "voice" / "dex_0.wav",
                              prompts=prompts, seeds=[0, 1, 2], conditions=[Condition("lora", strength, True)],
                              config=config)
        scored = [r for r in every if r["prompt"] in PROMPTS]  # lesson 06's comparison; STILL only for its travel
        row = {"checkpoint_step": ckpt, "lora_strength": strength, "sampling_steps": steps, "reference_video": face_guidance, "video_cfg": cfg,
               "clips": len(scored), "seconds": round(time.perf_counter() - t0, 1)}
        for key in ("face_similarity", "voice_similarity", "background_match"):
            row[key] = round(float(np.mean([r[key] for r in scored])), 3)
        row["face_by_prompt"] = {prompt: round(float(np.mean([r["face_similarity"] for r in every if r["prompt"] == prompt])), 3)
                                 for prompt in prompts}
        # frame widths the face crossed; issue 24 asks >= 0.25 for the walk, < 0.1 for the still prompt
        travelled = [(r["prompt"], face_travel(r["_frames"]).distance) for r in every]
        for key, asks_travel in (("walk_travel", True), ("still_travel", False)):
            travel = [d for prompt, d in travelled if prompt in PROMPTS + [STILL] and expects_travel(prompt) is asks_travel]
            if travel:
                row[key] = round(float(np.nanmean(travel)), 3)
        if args.extra_prompts:
            row["travel_by_prompt"] = {prompt: round(float(np.nanmean([d for q, d in travelled if q == prompt])), 3)
                                       for prompt in prompts}
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python benchmarks/identity_recipe_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {"machine": platform.machine(), "torch": torch.__version__, "command": command,
              "video_codec_sha256": sha256_file(default_tiny_dir() / "video_codec.safetensors"),
              "training_overrides": parse_overrides(args.set), "codec_ceiling": ceiling,
              "rows": rows}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
