"""Which guidance suits the tiny kit: its defaults against LTX-2.3's official terms, on the toy world, on the CPU.

Trains the ``audio_ref_only_ic`` LoRA with ``ltxic/configs/tiny_cpu.yaml`` (``--steps`` steps, as the acceptance test),
then samples the held-out identity ``dex`` (2 held-out prompts x 2 seeds, 10 steps) with each guidance below and
scores face and voice similarity and caption adherence with the toy embedders (``ltxic.identity.evaluate``). LTX-2.3's
STG block 28 does not exist in the 4-block tiny transformer; block 2 (the same relative depth) stands in.
Results: ``benchmarks/results/guidance_tiny.json``.

    OMP_NUM_THREADS=1 python benchmarks/guidance_tiny.py --steps 300
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data_samples"
OUT = ROOT / "benchmarks" / "results" / "guidance_tiny.json"


def variants():
    from ltxic.sampling.guidance import Guidance

    tiny = Guidance.tiny()
    ltx = Guidance.ltx23()
    stream = dict(stg_blocks=(2,))
    official = replace(ltx, video=replace(ltx.video, **stream), audio=replace(ltx.audio, **stream),
                       reference_video=tiny.reference_video, reference_audio=tiny.reference_audio)
    return {
        "tiny defaults (reference 3 / 1)": tiny,
        "+ text CFG 3 / 7": tiny.with_overrides(video_cfg=3.0, audio_cfg=7.0),
        "+ STG 1 (block 2)": tiny.with_overrides(video_stg=1.0, audio_stg=1.0, video_stg_blocks=(2,), audio_stg_blocks=(2,)),
        "+ modality 3": tiny.with_overrides(video_modality=3.0, audio_modality=3.0),
        "LTX-2.3 official terms + tiny reference": official,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from ltxic.data.dataset import load_dataset
    from ltxic.identity.evaluate import DEFAULT_CONDITIONS, heldout_captions, identity_eval, summarize
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.training.config import example_config, load_config
    from ltxic.training.trainer import train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(example_config("tiny_cpu"))
        cfg.optimization.steps = args.steps
        cfg.validation.interval = 0
        cfg.output.dir = Path(tmp) / "run"
        cfg.output.checkpoint_interval = args.steps
        t0 = time.perf_counter()
        lora = train(cfg, progress=False).lora_path
        train_s = time.perf_counter() - t0
        captions = [e.caption for e in load_dataset(DATA / "dataset.json").entries if e.split == "train"]
        prompts = heldout_captions(captions, 4, seed=1)[:2]
        lora_1 = [c for c in DEFAULT_CONDITIONS if c.name == "lora_strength_1"]
        rows = []
        for name, guidance in variants().items():
            t0 = time.perf_counter()
            got = identity_eval(None, lora, dataset=DATA / "dataset.json", identity="dex",
                                reference_image=DATA / "refs" / "dex.jpg", reference_audio=DATA / "voice" / "dex_0.wav",
                                prompts=prompts, seeds=[0, 1], conditions=lora_1,
                                config=GenerateConfig(steps=10, guidance=guidance))
            seconds = time.perf_counter() - t0
            s = summarize(got, ("condition",))[0]
            rows.append({"guidance": name, "face_similarity": round(s["face_similarity"], 3),
                         "voice_similarity": round(s["voice_similarity"], 3),
                         "background_match": round(s["background_match"], 3), "motion_match": round(s["motion_match"], 3),
                         "seconds_4_clips": round(seconds, 1), "settings": guidance.as_dict()})
            print(rows[-1]["guidance"], {k: v for k, v in rows[-1].items() if k not in ("guidance", "settings")}, flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": "python benchmarks/guidance_tiny.py " + " ".join(argv or sys.argv[1:]),
                               "train_steps": args.steps, "train_seconds": round(train_s, 1), "prompts": prompts,
                               "seeds": [0, 1], "sampling_steps": 10, "identity": "dex (held out)",
                               "torch": torch.__version__, "platform": platform.platform(), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
