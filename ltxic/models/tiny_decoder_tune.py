"""Fine-tune the tiny video codec's decoder alone: sharper pixels from the very same latents.

The encoder and its per-channel statistics stay bit for bit those of the source file, so every latent the tiny
kit has ever produced (the transformer's pretraining pool, the IC-LoRA caches, the course's numbers on latents)
stays valid; only decoding changes. The training pool is rendered and encoded once, and both stay on the device:
a step is one gather, one decoder pass and one optimizer step, with no host sync.

    python -m ltxic.models.tiny_decoder_tune --codecs data_samples/tiny --out OUT --device cuda \
        --pool 1536 --batch 16 --steps 20000 --max-seconds 380
    python -m ltxic.models.tiny_decoder_tune --codecs data_samples/tiny --out /tmp/dec --smoke    # CPU, seconds

``--noise`` adds Gaussian noise to the normalized latents (per clip, a level drawn uniformly up to it), so the
decoder keeps decoding the transformer's imperfect latents; ``--extra-layers`` deepens every residual stage of the
decoder by layers that start as the identity (the file stays within the kit's weight budget at 1). The record
(``decoder_record.json``) holds the command, the held-out PSNR before and after, measured as the pretrain record
measures it (:func:`~ltxic.models.tiny_pretrain.codec_metrics`, 64 held-out clips), and the PSNR curve while only
the decoder trains. Rerunning the same command resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

from ltxic.io.files import sha256_file, write_json_atomic
from ltxic.io.progress import progress as tqdm
from ltxic.models.codecs import AudioCodec, VideoCodec
from ltxic.models.tiny import AUDIO_CODEC_FILE, VIDEO_CODEC_FILE
from ltxic.models.tiny_pretrain import (TRAIN_SEED_BASE, Checkpoint, ToyRunConfig, codec_metrics, eval_seeds, json_safe, lr_at,
                                        optimizer_step, render_clips, time_frac, to_video_tensor)

DECODER_RECORD_FILE = "decoder_record.json"
DECODER_CKPT_FILE = "decoder_checkpoint.pt"


@dataclass
class DecoderTuneConfig(ToyRunConfig):
    codecs: str = "data_samples/tiny"  # folder with the source video codec (and the audio codec the metrics use)
    pool: int = 1536  # training clips, rendered and encoded once (seeds of the pretraining range)
    eval_clips: int = 64  # held-out clips of codec_metrics (the pretrain record's seeds)
    curve_clips: int = 16  # held-out clips scored every `curve_every` steps
    curve_every: int = 250
    steps: int = 20000
    batch: int = 16
    lr: float = 4e-4
    warmup: int = 100
    noise: float = 0.1  # largest std of the noise added to normalized latents (0: none)
    l1: float = 1.0
    mse: float = 1.0
    extra_layers: int = 0  # residual layers added to each decoder stage, initialised as the identity
    max_seconds: float | None = None  # end training after this long; the learning rate follows the clock
    bf16: bool = True
    ckpt_every: int = 1000
    smoke: bool = False

    @classmethod
    def smoke_config(cls, codecs: str, out: str) -> DecoderTuneConfig:
        return cls(codecs=codecs, out=out, width=64, height=64, frames=9, pool=4, eval_clips=2, curve_clips=2,
                   curve_every=3, steps=6, batch=2, lr=1e-3, warmup=2, bf16=False, workers=1, ckpt_every=3, smoke=True)


# ---------------------------------------------------------------- the decoder

def grow_decoder(codec: VideoCodec, extra_layers: int) -> VideoCodec:
    """A copy of ``codec`` whose decoder has ``extra_layers`` more residual layers in every ``res_x`` stage.

    The new layers' last convolution starts at zero, so each starts as the identity and the grown codec decodes
    exactly as ``codec`` does until it trains. The encoder and both sets of latent statistics are copied unchanged.
    """
    if extra_layers <= 0:
        return copy.deepcopy(codec)
    config = copy.deepcopy(codec.config)
    for name, params in config["vae"]["decoder_blocks"]:
        if name == "res_x":
            params["num_layers"] = int(params.get("num_layers", 1)) + extra_layers
    grown = VideoCodec(config)
    missing, unexpected = grown.load_state_dict(codec.state_dict(), strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise ValueError(f"grow_decoder: the grown codec does not extend the source (missing {missing}, unexpected {unexpected})")
    with torch.no_grad():
        for key in missing:
            if ".conv2." in key:
                grown.get_parameter(key).zero_()
    return grown


def raw_encoder_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The encoder's tensors of a codec file exactly as stored (no upcast)."""
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("encoder.")}


def same_encoder(a: str | Path, b: str | Path) -> bool:
    """Whether two codec files hold bit-identical encoders (weights and latent statistics)."""
    ta, tb = raw_encoder_tensors(a), raw_encoder_tensors(b)
    return ta.keys() == tb.keys() and all(ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]) for k in ta)


# ---------------------------------------------------------------- data

def _render_frames(cfg: DecoderTuneConfig, seeds: list[int], desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    clips = list(render_clips(cfg, seeds, desc))
    return torch.from_numpy(np.stack([c[0] for c in clips])), torch.from_numpy(np.stack([c[1] for c in clips]))


@torch.no_grad()
def encode_frames(video: VideoCodec, frames: torch.Tensor, device: str, batch: int = 16) -> torch.Tensor:
    """Normalized latents of uint8 clips ``(N, F, H, W, 3)``, in float32 as the kit encodes them."""
    video.eval()
    return torch.cat([video.encode(to_video_tensor(frames[i : i + batch]).to(device)).float() for i in range(0, len(frames), batch)])


@torch.no_grad()
def held_out_psnr(video: VideoCodec, latents: torch.Tensor, frames: torch.Tensor, batch: int = 8) -> float:
    """PSNR (dB, peak-to-peak 2) of decoding held-out latents against their frames (both on the codec's device)."""
    video.eval()
    se = 0.0
    for i in range(0, len(latents), batch):
        rec = video.decode(latents[i : i + batch].float())
        se += F.mse_loss(rec.float(), to_video_tensor(frames[i : i + batch]), reduction="sum").item()
    video.train()
    return round(10 * math.log10(4.0 / (se / frames.numel())), 3)


# ---------------------------------------------------------------- training

def tune_decoder(cfg: DecoderTuneConfig, command: list[str] | None = None) -> dict[str, Any]:
    """Fine-tune the decoder of ``cfg.codecs``'s video codec into ``cfg.out``; returns the record it writes."""
    src, out = Path(cfg.codecs), Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = cfg.device
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    src_file = src / VIDEO_CODEC_FILE
    source = VideoCodec.load(src_file)
    audio = AudioCodec.load(src / AUDIO_CODEC_FILE, device)
    ckpt = Checkpoint(out, cfg, DECODER_CKPT_FILE)  # keyed by this config's fields
    state = ckpt.load()
    record: dict[str, Any] = dict(state["record"]) if state else {}
    record.update({"command": command or sys.argv, "config": asdict(cfg), "torch": torch.__version__,
                   "source": {"file": str(src_file), "sha256": sha256_file(src_file)}})
    if (src / DECODER_RECORD_FILE).is_file():  # the source is itself a tuned decoder: keep the chain's history
        record["source"]["record"] = json.loads((src / DECODER_RECORD_FILE).read_text())

    video = grow_decoder(source, cfg.extra_layers).to(device)
    video.encoder.requires_grad_(False)
    params = list(video.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    start = 0
    if state:
        video.decoder.load_state_dict(state["decoder"]), opt.load_state_dict(state["opt"])
        start = state["step"]

    held_out = eval_seeds(0, cfg.eval_clips)  # the pretrain record's held-out clips (seed 0)
    eval_frames, eval_waves = _render_frames(cfg, held_out, "render held-out clips")
    if "eval_before" not in record:
        record["eval_before"] = codec_metrics(source.to(device), audio, eval_frames, eval_waves, device)
    t_render = time.time()
    seeds = [TRAIN_SEED_BASE + cfg.seed * 1_000_000 + i for i in range(cfg.pool)]
    pool_frames, _ = _render_frames(cfg, seeds, "render training pool")
    pool_latents = encode_frames(video, pool_frames, device)
    pool_frames = pool_frames.to(device)
    curve_frames = eval_frames[: cfg.curve_clips].to(device)
    curve_latents = encode_frames(video, eval_frames[: cfg.curve_clips], device)
    record["pool_s"] = round(time.time() - t_render, 1)
    record["latent_std"] = round(pool_latents.std().item(), 4)
    curve: list[list[float]] = record.setdefault("curve", [])  # [step, held-out PSNR on curve_clips, mean train loss]
    if not curve:
        curve.append([0, held_out_psnr(video, curve_latents, curve_frames), None])

    gen = torch.Generator().manual_seed(cfg.seed + 11)
    noise_gen = torch.Generator(device=device)
    pending: list[torch.Tensor] = []
    video.train()
    bar = tqdm(range(start, cfg.steps), desc="decoder", initial=start, total=cfg.steps)
    t_start, limit = time.time(), cfg.max_seconds
    step = start
    for step in bar:
        if limit is not None and time.time() - t_start > limit:
            record["stopped_early"] = {"step": step, "of": cfg.steps, "reason": f"--max-seconds {limit:g}"}
            break
        gen.manual_seed(cfg.seed * 5_000_011 + step)  # a step's batch is fixed: resuming replays the same data
        noise_gen.manual_seed(cfg.seed * 5_000_011 + step)
        idx = torch.randint(len(pool_latents), (cfg.batch,), generator=gen).to(device)
        z = pool_latents[idx]
        if cfg.noise > 0:
            level = cfg.noise * torch.rand((cfg.batch, 1, 1, 1, 1), generator=noise_gen, device=device)
            z = z + level * torch.randn(z.shape, generator=noise_gen, device=device)
        x = to_video_tensor(pool_frames[idx])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr, cfg.warmup, time_frac(t_start, limit))
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.startswith("cuda")):
            rec = video.decode(z, clamp=False)
        rec = rec.float()
        loss = cfg.l1 * F.l1_loss(rec, x) + cfg.mse * F.mse_loss(rec, x)
        optimizer_step(opt, loss, params)
        pending.append(loss.detach())
        if (step + 1) % cfg.curve_every == 0 or step + 1 == cfg.steps:  # the only host syncs of the loop
            mean_loss = round(torch.stack(pending).mean().item(), 5)
            pending.clear()
            curve.append([step + 1, held_out_psnr(video, curve_latents, curve_frames), mean_loss])
            bar.set_postfix({"loss": f"{mean_loss:.4f}", "psnr": f"{curve[-1][1]:.2f}"})
        if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
            ckpt.save({"step": step + 1, "decoder": video.decoder.state_dict(), "opt": opt.state_dict(), "record": json_safe(record)})
    else:
        step = cfg.steps
    record["steps_done"] = step
    record["train_s"] = round(time.time() - t_start, 1)
    record["steps_per_s"] = round((step - start) / max(record["train_s"], 1e-9), 2)
    if curve[-1][0] != step:
        curve.append([step, held_out_psnr(video, curve_latents, curve_frames), None])

    # what ships: float16 weights, the encoder copied from the source file's own tensors
    target = out / VIDEO_CODEC_FILE
    video.cpu().save(target)
    if not same_encoder(src_file, target):
        raise RuntimeError(f"{target}: the encoder differs from {src_file}'s; the latents would change")
    shipped = VideoCodec.load(target, device)
    record["eval_after"] = codec_metrics(shipped, audio, eval_frames, eval_waves, device)
    record["encoder_identical"] = True
    record["decoder_parameters"] = sum(p.numel() for p in shipped.decoder.parameters())
    record["file_mb"] = round(target.stat().st_size / 1e6, 3)
    record["sha256"] = sha256_file(target)
    record["wall_s"] = round(ckpt.elapsed(), 1)
    record["device_name"] = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    write_json_atomic(out / DECODER_RECORD_FILE, json_safe(record))
    ckpt.path.unlink(missing_ok=True)
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m ltxic.models.tiny_decoder_tune", description=__doc__.split("\n\n")[0])
    p.add_argument("--codecs", default="data_samples/tiny", help=f"folder with the source {VIDEO_CODEC_FILE} and {AUDIO_CODEC_FILE}")
    p.add_argument("--out", required=True, help=f"folder for the new {VIDEO_CODEC_FILE} and {DECODER_RECORD_FILE}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="a few steps on tiny clips (CPU, seconds)")
    for name, kind, text in (("seed", int, None), ("pool", int, "training clips"), ("eval-clips", int, "held-out clips"),
                             ("curve-clips", int, None), ("curve-every", int, None), ("steps", int, None), ("batch", int, None),
                             ("lr", float, "peak learning rate"), ("warmup", int, None),
                             ("noise", float, "largest std of the noise on normalized latents"), ("l1", float, "L1 weight"),
                             ("mse", float, "MSE weight"), ("extra-layers", int, "residual layers added to each decoder stage"),
                             ("max-seconds", float, "end training after this long (recorded)"), ("workers", int, "render processes"),
                             ("ckpt-every", int, None), ("frames", int, None)):
        p.add_argument(f"--{name}", type=kind, help=text)
    p.add_argument("--no-bf16", action="store_true")
    args = p.parse_args(argv)
    cfg = DecoderTuneConfig.smoke_config(args.codecs, args.out) if args.smoke else DecoderTuneConfig(codecs=args.codecs, out=args.out)
    cfg.device = args.device if not args.smoke else "cpu"
    for key, value in vars(args).items():
        if value is not None and hasattr(cfg, key) and key not in ("codecs", "out", "device", "smoke"):
            setattr(cfg, key, value)
    cfg.bf16 = cfg.bf16 and not args.no_bf16
    record = tune_decoder(cfg, command=["python", "-m", "ltxic.models.tiny_decoder_tune", *(argv if argv is not None else sys.argv[1:])])
    print({k: record.get(k) for k in ("eval_before", "eval_after", "steps_done", "steps_per_s", "file_mb", "wall_s")})
    return record


if __name__ == "__main__":
    main()
