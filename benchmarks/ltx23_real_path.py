"""LTX-2.3 at full size, random weights, through the commands users run: ``ltxic train`` and ``ltxic sample``.

No real weights are reachable from the lent GPU, so this writes the official files at full size with random bf16
weights (``ltxic.models.miniature`` at ``scale="full"``: the official config, key names and layout, Gemma 3 12B in the
Hugging Face layout, the upscaler and the rank-384 distilled LoRA) into a ComfyUI tree, then runs, each in its
own process:

* ``h100``: ``ltxic train`` with the shipped ``ltxic/configs/ltx23_h100.yaml`` pointed at the tree and at toy
  clips of its first bucket (960x544x121): caching (Gemma, VAE encoders), ``--steps`` steps, one validation
  (the config's settings: 960x544x121, 30 steps, CFG 4); then ``ltxic sample --two-stage`` at 960x576x121 with
  the LoRA it trained. Checks that every stage fits one 80 GB card.
* ``24gb``: the same with ``ltxic/configs/ltx23_24gb.yaml`` (fp8 blocks, Gemma streamed from host memory,
  768x448x49) and ``ltxic sample --two-stage --fp8 --offload-text-encoder`` at 768x448x49, the process capped at
  24 GiB with ``torch.cuda.set_per_process_memory_fraction``: any stage above it fails with an OOM error.

The only changes to the shipped configs are paths (tree, dataset, validation references, output), the step
count, one validation prompt instead of the config's list, and the validation interval (= steps). Every stage's
time and peak memory come from the runs' own ``stages.json`` (train) and the sampler's (sample).

    python benchmarks/ltx23_real_path.py --tree /tmp/comfy --data-h100 .bench/h100 --data-24gb .bench/24gb --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
GIB = 2**30


def _config(name: str, tree: Path, data: Path, out: Path, steps: int) -> Path:
    cfg = yaml.safe_load((REPO / "ltxic" / "configs" / f"{name}.yaml").read_text())
    dataset = json.loads((data / "dataset.json").read_text())
    first = dataset["entries"][0]
    cfg["model"]["comfyui_root"] = str(tree)
    cfg["dataset"]["dataset_file"] = str(data / "dataset.json")
    cfg["optimization"].update(steps=steps, warmup_steps=max(0, min(5, steps // 4)))
    cfg["validation"].update(interval=steps, prompts=cfg["validation"]["prompts"][:1],
                             reference_image=str(data / first["reference_image"]),
                             reference_audio=str(data / first["reference_audio"]))
    cfg["output"].update(dir=str(out / f"run_{name}"), checkpoint_interval=steps)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_part(args: argparse.Namespace) -> int:
    """One config in this process: train, then sample in two stages (the CLI's own functions)."""
    import torch

    from ltxic.cli import main

    out = Path(args.out)
    if args.cap_gib:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
        print(f"memory capped at {args.cap_gib} GiB of {total / GIB:.0f}", flush=True)
    config = _config(args.config, Path(args.tree).resolve(), Path(args.data).resolve(), out, args.steps)
    t0 = time.perf_counter()
    rc = main(["train", str(config)])
    train_s = time.perf_counter() - t0
    if rc:
        return rc
    run = out / f"run_{args.config}"
    lora = run / "checkpoints" / f"step_{args.steps:06d}" / "lora.safetensors"
    data = Path(args.data).resolve()
    entry = json.loads((data / "dataset.json").read_text())["entries"][0]
    w, h, f = (int(x) for x in args.sample_size.split("x"))
    sample = ["sample", "--comfyui-root", args.tree, "--lora", str(lora), "--two-stage",
              "--reference-image", str(data / entry["reference_image"]), "--reference-audio", str(data / entry["reference_audio"]),
              "--dataset", str(data / "dataset.json"), "--identity", entry["identity"],
              "--prompt", "A person slowly turns head left while speaking in a sunlit kitchen.",
              "--width", str(w), "--height", str(h), "--frames", str(f), "--steps", "30",
              "--out", str(out / f"samples_{args.config}")]
    if args.config == "ltx23_24gb":
        sample += ["--fp8", "--offload-text-encoder"]
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rc = main(sample)
    sample_s = time.perf_counter() - t0
    summary = {
        "config": args.config, "cap_gib": args.cap_gib, "device": torch.cuda.get_device_name(0),
        "train_seconds": round(train_s, 1), "sample_seconds": round(sample_s, 1), "sample_size": args.sample_size,
        "train": json.loads((run / "stages.json").read_text()),
        "sample": json.loads((out / f"samples_{args.config}" / "stages.json").read_text())["stages"] if rc == 0 else None,
    }
    (out / f"summary_{args.config}.json").write_text(json.dumps(summary, indent=1))
    return rc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", required=True, help="ComfyUI tree for the full-size files (written when absent)")
    p.add_argument("--data-h100", help="toy dataset at 960x544x121 (ltxic toy make-dataset ...)")
    p.add_argument("--data-24gb", help="toy dataset at 768x448x49")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--parts", default="h100,24gb")
    # one part in this process (used by the driver above)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--cap-gib", type=float, default=0, help=argparse.SUPPRESS)
    p.add_argument("--sample-size", help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.config:
        return run_part(args)

    tree = Path(args.tree)
    if not (tree / "models" / "checkpoints" / "ltx-2.3-22b-dev.safetensors").exists():
        from ltxic.models.miniature import build_miniature

        t0 = time.perf_counter()
        build_miniature(tree, scale="full", device="cuda")
        (out / "files.json").write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 1)}))
    parts = {
        "h100": ("ltx23_h100", args.data_h100, 0, "960x576x121"),
        "24gb": ("ltx23_24gb", args.data_24gb, 24, "768x448x49"),
    }
    rc = 0
    for name in args.parts.split(","):
        config, data, cap, size = parts[name]
        cmd = [sys.executable, __file__, "--tree", str(tree), "--out", str(out), "--steps", str(args.steps),
               "--config", config, "--data", str(data), "--cap-gib", str(cap), "--sample-size", size]
        print("$", " ".join(cmd), flush=True)
        rc |= subprocess.call(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return rc


if __name__ == "__main__":
    sys.exit(main())
