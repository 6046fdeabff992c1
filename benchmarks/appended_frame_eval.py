"""Does a tiny base read frames appended after a clip, and the person in them? (issue 24, the 8x kit)

An IC reference portrait enters as clean tokens appended after the target, at the positions of its first latent frame
(``ltxic.models.strategies``). For each kit folder given, this renders held-out toy clips (``tiny_pretrain``'s seed-5
evaluation set) and reports stage 2's fixed flow-matching loss (``ltxic.models.tiny_flow.fm_eval``) three ways:
plain; with the clip's own first latent frame appended clean (keyframe conditioning: the loss falls as far as the base
copies an appended frame); and with a frame of the same person from another shot appended there (another room,
light and framing: the loss falls only where the base takes the person and leaves the room, which is what an IC
reference asks of it)::

    python benchmarks/appended_frame_eval.py data_samples/tiny DIR_WITH_AN_8X_KIT ... --out results/x.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from ltxic.io.files import sha256_file, write_json_atomic
from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.text_encoder import TextEncoder
from ltxic.models.tiny import AUDIO_CODEC_FILE, TEXT_ENCODER_FILE, VIDEO_CODEC_FILE
from ltxic.models.tiny_flow import TokenLayout, fm_eval
from ltxic.models.tiny_pretrain import PretrainConfig, encode_frames, encode_pool, eval_seeds, render_other_shots
from ltxic.models.transformer import TINY_TRANSFORMER_FILE, load_pretrained_tiny


def evaluate(folder: Path, clips: int) -> dict:
    cfg = PretrainConfig(out="unused", device="cpu", workers=1, seed=5)
    video = VideoCodec.load(folder / VIDEO_CODEC_FILE, "cpu")
    audio = AudioCodec.load(folder / AUDIO_CODEC_FILE, "cpu")
    model = load_pretrained_tiny(folder, device="cpu").float()
    text = TextEncoder.load(folder / TEXT_ENCODER_FILE, "cpu")
    seeds = eval_seeds(cfg.seed, clips)
    zv, za, caps, face = encode_pool(cfg, video, audio, seeds, "render+encode clips")
    other = encode_frames(cfg, video, render_other_shots(cfg, seeds, "render other shots"))
    layout = TokenLayout.build(video, audio, text, zv, za, caps, cfg.fps, "cpu")
    losses = fm_eval(model, text, layout, zv, za, caps, "cpu", other, face)
    return {"folder": str(folder), "sha256": {n: sha256_file(folder / n) for n in (TINY_TRANSFORMER_FILE, VIDEO_CODEC_FILE)},
            "latent_grid": list(zv.shape[-2:]), **losses,
            "frame0_appended_over_plain": round(losses["video_fm_loss_frame0_appended"] / losses["video_fm_loss"], 3),
            "other_shot_appended_over_plain": round(losses["video_fm_loss_other_shot_appended"] / losses["video_fm_loss"], 3),
            "face_other_shot_appended_over_plain": round(losses["video_fm_loss_face_other_shot_appended"]
                                                         / losses["video_fm_loss_face"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kits", nargs="+", type=Path, help="kit folders (data_samples/tiny's layout)")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    for folder in args.kits:
        rows.append(evaluate(folder, args.clips))
        print(json.dumps(rows[-1]), flush=True)
    write_json_atomic(args.out, {"machine": platform.machine(), "torch": torch.__version__, "clips": args.clips,
                                 "command": "python benchmarks/appended_frame_eval.py " + " ".join(map(str, args.kits))
                                 + f" --clips {args.clips} --out {args.out}", "rows": rows})


if __name__ == "__main__":
    main()
