"""Benchmark: load the tiny preset and sample one clip on the CPU (issue 6 asks < 30 s on a 2-core CPU).

Times, separately and in total: loading the tiny kit from its files, preparing and encoding the references,
sampling (video + audio latents), decoding, and writing the mp4. Uses the pretrained kit in
``data_samples/tiny`` when it exists; otherwise it writes a kit with random (seeded) weights of the same
shapes to a temporary folder and says so in the result (the time per step does not depend on the weights).
The LoRA is ``--lora`` (e.g. the one ``benchmarks/identity_eval.py --part train`` trains) or, without it, a
stand-in of the same layout with random weights (the time does not depend on the LoRA's values).
Writes ``tiny_sample.json`` beside this file.

    python benchmarks/tiny_sample.py [--threads 2] [--steps 20] [--width 128 --height 128 --frames 25] [--lora L]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--lora", type=Path, default=None, help="a trained identity LoRA (default: a random stand-in)")
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ltxic.sampling.generate import GenerateConfig, generate
    from ltxic.models.kit import Models
    from ltxic.io.files import write_json_atomic
    from ltxic.models.transformer import default_tiny_dir
    from ltxic.sampling.references import consent_for
    from tests.inference_kit import DATA, make_lora, make_tiny_dir

    work = Path(tempfile.mkdtemp(prefix="ltxic_bench_"))
    tiny = default_tiny_dir()
    weights = "pretrained (data_samples/tiny)"
    if not (tiny / "transformer.safetensors").exists():
        tiny = make_tiny_dir(work / "tiny")
        weights = "random, seeded (data_samples/tiny not present yet); same shapes as the pretrained kit"
    lora = args.lora or make_lora(work / "identity.safetensors", factor=2)
    lora_kind = str(args.lora.relative_to(ROOT) if args.lora.is_relative_to(ROOT) else args.lora) if args.lora else "random stand-in (rank 4)"
    consent = consent_for(DATA / "dataset.json", "ava")

    t0 = time.perf_counter()
    models = Models.tiny(tiny)
    t_load = time.perf_counter() - t0
    config = GenerateConfig(width=args.width, height=args.height, frames=args.frames, steps=args.steps)
    t1 = time.perf_counter()
    gen = generate(models, "A person slowly turns head left while speaking in a bright blue room.", lora=lora,
                   reference_image=DATA / "refs" / "ava.jpg", reference_audio=DATA / "voice" / "ava_0.wav",
                   consent=consent, identity="ava", config=config, out_dir=work / "out", progress=False)[0]
    t_generate = time.perf_counter() - t1
    total = time.perf_counter() - t0
    result = {
        "task": "load the tiny preset and sample one clip (IC-LoRA, reference face + voice, video + audio, mp4) on the CPU",
        "total_seconds": round(total, 2),
        "load_seconds": round(t_load, 2),
        "generate_seconds": round(t_generate, 2),
        "target_seconds": 30,
        "within_target": total < 30,
        "threads": args.threads,
        "clip": {"width": args.width, "height": args.height, "frames": args.frames, "fps": config.fps, "steps": args.steps,
                 "video_latent": list(gen.video_latent.shape), "audio_latent": list(gen.audio_latent.shape)},
        "weights": weights,
        "lora": lora_kind,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    write_json_atomic(args.out, result)
    shutil.rmtree(work, ignore_errors=True)
    print(result)


if __name__ == "__main__":
    main()
