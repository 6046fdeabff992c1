"""Measure the issues' claims on the tiny kit, on the CPU; results go to ``benchmarks/results/identity_eval.json``.

Parts (``--part``, repeatable; each updates its own key of the JSON file):

* ``train``: train the ``audio_ref_only_ic`` LoRA with ``ltxic/configs/tiny_cpu.yaml`` (issues 5/6: at most
  5 minutes on the CPU); wall time in total (caching + training + validation) and of the optimizer steps alone.
* ``identity``: held-out prompts x seeds, with the held-out identity's (``dex``) and a training identity's
  (``ava``) references: base text-only, base with references appended, LoRA at strength 1, LoRA at strength 0
  (asserted bitwise equal to the base with references); face / voice similarity and caption adherence.
* ``seeds``: the base from text only (issue 4): caption match rates and the face similarity between seeds of
  a caption, next to the same-identity and different-identity levels of real clips.

    OMP_NUM_THREADS=1 python benchmarks/identity_eval.py --part train --part identity --part seeds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data_samples"
OUT = ROOT / "benchmarks" / "results" / "identity_eval.json"


def _load() -> float:
    return os.getloadavg()[0]


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))


def table(rows: list[dict], keys: list[str]) -> str:
    lines = [" | ".join(keys), " | ".join("---" for _ in keys)]
    lines += [" | ".join(_fmt(r.get(k)) for k in keys) for r in rows]
    return "\n".join(lines)


def part_train(config: Path, output_dir: Path) -> dict:
    import torch

    from ltxic.training.config import load_config
    from ltxic.training.trainer import train

    cfg = load_config(config)
    cfg.output.dir = output_dir
    load_before = _load()
    t0 = time.perf_counter()
    result = train(cfg, progress=False)
    total = time.perf_counter() - t0
    steps_s = [json.loads(line)["seconds"] for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "config": str(config.relative_to(ROOT)), "lora": _rel(result.lora_path), "steps": result.step,
        "wall_seconds_total": round(total, 1), "wall_seconds_training_loop": round(result.seconds, 1),
        "wall_seconds_optimizer_steps": round(sum(steps_s), 1),
        "wall_seconds_caching_and_setup": round(total - result.seconds, 1),
        "final_loss_mean_last_20": round(sum(result.losses[-20:]) / max(1, len(result.losses[-20:])), 4),
        "first_loss_mean_20": round(sum(result.losses[:20]) / max(1, len(result.losses[:20])), 4),
        "target_seconds": 300, "within_target": total <= 300, "threads": torch.get_num_threads(),
        "load_average_1min_before_after": [round(load_before, 2), round(_load(), 2)],
    }


def part_identity(lora: Path, prompts: list[str], seeds: list[int], steps: int, identities: list[str],
                  frames: int = 25) -> dict:
    import torch

    from ltxic.identity.evaluate import DEFAULT_CONDITIONS, REFERENCE_GUIDANCE_SCALE, identity_eval, summarize
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.sampling.guidance import Guidance

    config = GenerateConfig(frames=frames, steps=steps,
                            guidance=Guidance.tiny().with_overrides(reference_video=REFERENCE_GUIDANCE_SCALE))
    out: dict = {"prompts": prompts, "seeds": seeds, "frames": frames, "sampling_steps": steps, "lora": _rel(lora),
                 "reference_guidance_scale": REFERENCE_GUIDANCE_SCALE,
                 "audio_reference_guidance_scale": config.guidance.reference_audio, "text_cfg_scale": 1.0,
                 "by_identity": {}}
    all_rows = []
    t0 = time.perf_counter()
    for ident in identities:
        kw = dict(dataset=DATA / "dataset.json", identity=ident, reference_image=DATA / "refs" / f"{ident}.jpg",
                  reference_audio=DATA / "voice" / f"{ident}_0.wav", config=config)
        main = [c for c in DEFAULT_CONDITIONS if c.name != "lora_strength_0"]
        rows = identity_eval(None, lora, prompts=prompts, seeds=seeds, conditions=main, **kw)
        # strength 0 must be the base exactly: checked on the first prompt, both seeds
        zero = identity_eval(None, lora, prompts=prompts[:1], seeds=seeds,
                             conditions=[c for c in DEFAULT_CONDITIONS if c.name == "lora_strength_0"], **kw)
        base = {(r["prompt"], r["seed"]): r for r in rows if r["condition"] == "base_with_references"}
        for r in zero:
            b = base[(r["prompt"], r["seed"])]
            assert torch.equal(r["_video_latent"], b["_video_latent"]), "LoRA at strength 0 differs from the base (video)"
            assert torch.equal(r["_audio_latent"], b["_audio_latent"]), "LoRA at strength 0 differs from the base (audio)"
        rows += zero
        all_rows += rows
        out["by_identity"][ident] = {"split": "eval" if ident == "dex" else "train", "summary": summarize(rows, ("condition",)),
                                     "strength_0_bitwise_equal_base": True, "strength_0_checked": len(zero)}
    out["rows"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in all_rows]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def part_seeds(captions: list[str], seeds: list[int], steps: int, cfg_scale: float = 1.0) -> dict:
    from ltxic.identity.evaluate import real_identity_similarity, seed_spread
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.sampling.guidance import Guidance

    t0 = time.perf_counter()
    spread = seed_spread(None, captions, seeds, config=GenerateConfig(
        steps=steps, guidance=Guidance.tiny().with_overrides(video_cfg=cfg_scale, audio_cfg=cfg_scale)))
    real = real_identity_similarity(DATA / "dataset.json")
    return {"sampling_steps": steps, "text_cfg_scale": cfg_scale, "text_only_base": spread, "real_clips": real, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=["train", "identity", "seeds"])
    parser.add_argument("--config", type=Path, default=ROOT / "ltxic" / "configs" / "tiny_cpu.yaml")
    parser.add_argument("--train-dir", type=Path, default=ROOT / "outputs" / "identity_eval")
    parser.add_argument("--lora", type=Path, default=None, help="evaluate this LoRA (default: the one --part train wrote)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--captions", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10, help="sampling steps of the evaluation clips")
    parser.add_argument("--frames", type=int, default=25, help="frames of the evaluation clips")
    parser.add_argument("--identities", default="dex,ava")
    parser.add_argument("--cfg", type=float, default=1.0, help="text CFG scale of the seeds part (1 = off)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the tiny model gains nothing from more, and a loaded machine loses much)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    parts = args.part or ["train", "identity", "seeds"]

    import torch

    torch.set_num_threads(args.threads)
    from ltxic.data.dataset import load_dataset
    from ltxic.identity.evaluate import heldout_captions
    from ltxic.io.files import write_json_atomic

    results: dict = {}
    results["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "torch": torch.__version__, "threads": args.threads}
    results["command"] = f"OMP_NUM_THREADS={args.threads} python " + " ".join(sys.argv)
    train_captions = [e.caption for e in load_dataset(DATA / "dataset.json").entries if e.split == "train"]

    def save() -> None:
        """Update this run's keys in the results file (parts run as separate processes share it)."""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        for key, value in results.items():
            if key == "identity" and "identity" in merged:
                merged["identity"]["by_identity"].update(value["by_identity"])
                merged["identity"]["rows"] = [r for r in merged["identity"]["rows"] if r["identity"] not in value["by_identity"]]
                merged["identity"]["rows"] += value["rows"]
                merged["identity"].update({k: v for k, v in value.items() if k not in ("by_identity", "rows")})
            elif key == "command":
                merged.setdefault("commands", {})[" ".join(sys.argv[1:]) or "all"] = value
            else:
                merged[key] = value
        write_json_atomic(args.out, merged)

    if "train" in parts:
        results["train"] = part_train(args.config, args.train_dir)
        save()
        print(table([results["train"]], ["steps", "wall_seconds_total", "wall_seconds_optimizer_steps",
                                          "wall_seconds_caching_and_setup", "first_loss_mean_20", "final_loss_mean_last_20"]))
    if "identity" in parts:
        lora = args.lora or args.train_dir / "checkpoints" / "latest_lora.safetensors"
        if args.lora is None:
            from ltxic.training.checkpoints import latest_checkpoint

            lora = latest_checkpoint(args.train_dir) / "lora.safetensors"
        prompts = heldout_captions(train_captions, args.prompts, seed=1)
        results["identity"] = part_identity(lora, prompts, list(range(args.seeds)), args.steps, args.identities.split(","),
                                            args.frames)
        save()
        for ident, r in results["identity"]["by_identity"].items():
            print(f"\nidentity {ident} ({r['split']}), held-out prompts:")
            print(table(r["summary"], ["condition", "face_similarity", "face_similarity_std", "voice_similarity",
                                       "face_found", "background_match", "motion_match", "samples"]))
    if "seeds" in parts:
        captions = heldout_captions([], args.captions, seed=2)
        key = "seeds" if args.cfg == 1.0 else f"seeds_cfg{args.cfg:g}"
        results[key] = part_seeds(captions, list(range(args.seeds)), args.steps, args.cfg)
        save()
        s, real = results[key]["text_only_base"], results[key]["real_clips"]
        print(f"\nbase, text only (text CFG {args.cfg:g}):")
        print(table([{"background_match": s["background_match"], "motion_match": s["motion_match"],
                      "between_seed_face_similarity": s["between_seed_face_similarity"],
                      "between_caption_face_similarity": s["between_caption_face_similarity"],
                      "real_same_identity": real["same_identity"], "real_different_identity": real["different_identity"]}],
                    ["background_match", "motion_match", "between_seed_face_similarity", "between_caption_face_similarity", "real_same_identity", "real_different_identity"]))


if __name__ == "__main__":
    main()
