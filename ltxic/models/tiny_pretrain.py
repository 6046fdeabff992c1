"""Pretrain the tiny LTX-2 base on the toy identity world (the embedded stand-in for the official checkpoint).

Stage 1 trains the video and audio codecs as autoencoders on toy clips, then fixes their latent statistics.
Stage 2 trains the tiny ``LTXModel`` and the toy text encoder jointly with rectified flow
(``x_s = (1 - s) x0 + s noise``, target velocity ``noise - x0``, MSE on video and audio tokens) on
caption -> video + audio, where every clip has a random identity the caption does not determine.

    python -m ltxic.models.tiny_pretrain --out data_samples/tiny --device cuda
    python -m ltxic.models.tiny_pretrain --out /tmp/tiny --smoke        # every stage, a few steps, CPU, < 60 s
    # stage 2 only, on the shipped codecs (how the shipped transformer was trained; see pretrain_record.json)
    python -m ltxic.models.tiny_pretrain --out OUT --device cuda --from-codecs data_samples/tiny --latent-pool 6144 \
        --batch 512 --steps 2000 --lr 5e-4 --max-train-seconds 370
    # then stage 2 trained on from it, with image-to-video clips, on fresh identities (the shipped transformer since
    # 2026-12-05; see transformer_record.json)
    python -m ltxic.models.tiny_pretrain --out OUT --device cuda --from-codecs data_samples/tiny \
        --transformer-from data_samples/tiny --first-frame-p 0.1 --seed 1 --latent-pool 4096 --batch 512 \
        --steps 2000 --lr 2e-4 --max-train-seconds 280

Stage 2's objective lives in :mod:`ltxic.models.tiny_flow`. Token positions come from the codecs' own geometry,
exactly as the sampler and the trainer build them: a base pretrained on other positions (say the real VAE's 32x
grid) denoises well in training and draws no faces when sampled. On a GPU a step of the 2 M-parameter model is
bound by Python dispatch (about 5 steps/s on an H100 at batch 64 and at batch 512 alike), so large batches come
almost free.

Checkpoints are written atomically every ``--ckpt-every`` steps; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ltxic.io.progress import progress as tqdm

from ltxic.models.codecs import AudioCodec, VideoCodec, video_codec_config
from ltxic.io.files import atomic_path, sha256_file, write_json_atomic
from ltxic.models.transformer import (TINY_TRANSFORMER_FILE, build_transformer, count_parameters, load_pretrained_tiny,
                                     preset_config, save_transformer)
from ltxic.models.text_encoder import TextEncoder, build_vocab
from ltxic.models.tiny_flow import TokenLayout, face_token_mask, flow_matching_loss, fm_eval
from ltxic.models.tiny import AUDIO_CODEC_FILE, RECORD_FILE, TEXT_ENCODER_FILE, VIDEO_CODEC_FILE
from ltxic.toy.identity import make_identity
from ltxic.toy.render import render_clip
from ltxic.toy.scene import ACTIONS, BACKGROUNDS, FRAMINGS, LIGHTS, Scene, random_scene

CKPT_FILE = "pretrain_checkpoint.pt"
# the record of a base trained on from another (--transformer-from): shipped beside pretrain_record.json, which
# keeps describing the codecs and the first transformer run
TRANSFORMER_RECORD_FILE = "transformer_record.json"
# identity seeds for pretraining start here; held-out evaluation clips use a disjoint range
TRAIN_SEED_BASE, EVAL_SEED_BASE = 1_000_000, 9_000_000


@dataclass
class ToyRunConfig:
    """What the tiny kit's training scripts share: the output folder, device and seed, and the toy clips they render
    (:func:`render_clips` reads the size and ``workers``)."""

    out: str = "data_samples/tiny"
    device: str = "cpu"
    seed: int = 0
    width: int = 128
    height: int = 128
    frames: int = 49
    fps: float = 24.0
    workers: int = 0  # render processes (0: all CPU cores)


@dataclass
class PretrainConfig(ToyRunConfig):
    codec_steps: int = 1500
    codec_batch: int = 16
    codec_lr: float = 1e-3
    codec_pool: int = 2048
    codec_frames: int = 17  # stage 1 trains on random windows of this many frames (8k+1): the codec is convolutional
    latent_channels: int = 16  # video latent channels = the transformer's in_channels
    spatial: int = 8  # the video codec's spatial compression: 8 (the shipped codec, a 16x16 grid at 128 px) or 16
    audio_codec_from: str | None = None  # stage 1 trains the video codec only and keeps this folder's audio codec
    video_codec_from: str | None = None  # stage 1 starts from this folder's video codec (encoder and decoder train on)
    max_codec_seconds: float | None = None  # end stage 1 after this long (the learning rate follows the clock)
    steps: int = 6000
    batch: int = 64
    lr: float = 4e-4
    latent_pool: int = 8192
    eval_clips: int = 64
    sigma_shift: float = 1.5  # shifts logit-normal sigmas toward noise, as LTX-2's schedule does
    caption_dropout: float = 0.1  # empty captions teach the unconditional branch used by CFG
    latent_noise: float = 0.1  # noise added to codec latents in training: decoders tolerate diffusion errors
    bf16: bool = True
    max_train_seconds: float | None = None  # stop stage 2 early (recorded) so a time-limited session still saves
    compile: bool = False  # torch.compile the training forward: the tiny model's steps are bound by Python dispatch
    ckpt_every: int = 500
    smoke: bool = False
    from_codecs: str | None = None  # skip stage 1: copy these trained codecs (a folder) into ``out`` and use them
    transformer_from: str | None = None  # stage 2 continues this folder's transformer and text encoder
    first_frame_p: float = 0.0  # share of stage-2 clips whose first latent frame is given clean (image-to-video)
    keyframe_p: float = 0.0  # share of stage-2 steps that append one latent frame of each clip as clean tokens
    other_shot_p: float = 0.0  # share of stage-2 steps that append a frame of the same person from another shot
    other_shot_closeup: bool = False  # the other shots are close-ups (else any framing)
    face_weight: float = 1.0  # weight of the face's tokens in the video loss on steps with another shot appended

    @classmethod
    def smoke_config(cls, out: str) -> PretrainConfig:
        return cls(out=out, device="cpu", width=64, height=64, frames=9, codec_steps=8, codec_batch=2, codec_pool=4,
                   steps=20, batch=4, latent_pool=8, eval_clips=2, lr=1e-3, workers=1, bf16=False, ckpt_every=10, smoke=True)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
    """One step: zero the gradients, backpropagate ``loss``, clip ``params``' gradient norm to 1, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def _flush_losses(pending: list[torch.Tensor], losses: list[list[float]], bar: Any, names: tuple[str, str]) -> None:
    """Move the pending (video, audio) losses to the host in one sync, log them and show the last on the bar."""
    values = torch.stack(pending).float().cpu().tolist()
    losses.extend([[round(v, 5), round(a, 5)] for v, a in values])
    pending.clear()
    bar.set_postfix({names[0]: f"{values[-1][0]:.4f}", names[1]: f"{values[-1][1]:.4f}"})


def toy_vocabulary() -> list[str]:
    """Every word of every toy caption, plus the alternative phrasings the caption parser accepts."""
    captions = [
        Scene(bg, light, framing, action, speaking).caption
        for bg, light, framing, action, speaking in itertools.product(BACKGROUNDS, LIGHTS, FRAMINGS, ACTIONS, (True, False))
        if speaking or action != "speaks"
    ]
    return build_vocab([*captions, "his her their head to the an"])


def _render(args: tuple[int, int, int, int, float]) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    seed, width, height, frames, fps = args
    rng = np.random.default_rng([0x9E7, seed])
    clip = render_clip(make_identity(seed), random_scene(rng), seed=seed, width=width, height=height, frames=frames, fps=fps)
    return clip.frames, clip.audio, clip.caption, clip.truth.face_box


def _render_other_shot(args: tuple[int, int, int, int, float], closeup: bool = False) -> np.ndarray:
    """One frame ``(1, H, W, 3)`` of the seed's person in another random scene, at a random moment of its action;
    framed as a close-up (the face as large as a reference portrait's) with ``closeup``."""
    seed, width, height, _, fps = args
    rng = np.random.default_rng([0x5407, seed])
    scene = random_scene(rng)
    if closeup:
        scene = replace(scene, framing="close-up")
    clip = render_clip(make_identity(seed), scene, seed=seed + 1, width=width, height=height, frames=17, fps=fps)
    return clip.frames[int(rng.integers(17))][None]


def _render_map(render, cfg: ToyRunConfig, seeds: list[int], desc: str):
    """Yield ``render((seed, width, height, frames, fps))`` for each seed, in order, on ``cfg.workers`` processes."""
    jobs = [(s, cfg.width, cfg.height, cfg.frames, cfg.fps) for s in seeds]
    workers = cfg.workers or mp.cpu_count()
    if workers <= 1:
        yield from tqdm(map(render, jobs), total=len(jobs), desc=desc, leave=False)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(render, jobs, chunksize=8), total=len(jobs), desc=desc, leave=False)


def render_other_shots(cfg: ToyRunConfig, seeds: list[int], desc: str) -> np.ndarray:
    """Frames ``(N, 1, H, W, 3)``: for each seed, its person seen in another shot (another room, light, framing;
    always a close-up with ``cfg.other_shot_closeup``)."""
    render = partial(_render_other_shot, closeup=getattr(cfg, "other_shot_closeup", False))
    return np.stack(list(_render_map(render, cfg, seeds, desc)))


@torch.no_grad()
def encode_frames(cfg: PretrainConfig, video: VideoCodec, frames: np.ndarray) -> torch.Tensor:
    """Latents ``(N, C, 1, h, w)`` of single frames ``(N, 1, H, W, 3)``, as a reference image is encoded."""
    return torch.cat([video.encode(to_video_tensor(frames[i : i + 64]).to(cfg.device)).float().cpu()
                      for i in range(0, len(frames), 64)])


def eval_seeds(seed: int, n: int) -> list[int]:
    """The held-out clips' seeds of a run with ``--seed seed`` (its ``fm_eval`` and codec figures use these)."""
    return [EVAL_SEED_BASE + seed * 10_000 + i for i in range(n)]


def render_clips(cfg: ToyRunConfig, seeds: list[int], desc: str):
    """Yield ``(frames uint8 (F,H,W,3), audio (1,N), caption, face boxes (F,4))`` for each seed, rendered by worker
    processes."""
    yield from _render_map(_render, cfg, seeds, desc)


def to_video_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, F, H, W, 3)`` -> float ``(B, 3, F, H, W)`` in [-1, 1]."""
    x = torch.as_tensor(frames)
    return x.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of frames in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float()).item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def sample_sigmas(n: int, shift: float, gen: torch.Generator) -> torch.Tensor:
    """Logit-normal sigmas in (0, 1), shifted toward 1 (noise) by ``shift``."""
    s = torch.sigmoid(torch.randn(n, generator=gen))
    return shift * s / (1 + (shift - 1) * s)


def lr_at(step: int, total: int, peak: float, warmup: int, elapsed_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay over the run; ``elapsed_frac`` (time used / time allowed) moves the
    decay forward when a time limit will end the run before ``total`` steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = max((step - warmup) / max(1, total - warmup), elapsed_frac)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def time_frac(t0: float, limit: float | None) -> float:
    """The share of a time limit used since ``t0`` (0 without a limit), for :func:`lr_at`."""
    return 0.0 if limit is None else (time.time() - t0) / limit


def _windows(pool: torch.Tensor, idx: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """A random window of ``length`` frames from each clip ``pool[idx]`` (pool: (N, F, H, W, 3), on any device),
    gathered where the pool lies: one indexing op, no per-clip copies."""
    n_frames = pool.shape[1]
    if length >= n_frames:
        return pool[idx.to(pool.device)]
    starts = torch.randint(n_frames - length + 1, (len(idx),), generator=gen)
    t = (starts[:, None] + torch.arange(length)[None]).to(pool.device)
    return pool[idx.to(pool.device)[:, None], t]


class Checkpoint:
    """Atomic training-state file in the output folder (loaded with ``weights_only=True``)."""

    def __init__(self, out: Path, cfg: ToyRunConfig, name: str = CKPT_FILE) -> None:
        self.path = out / name
        self.key = {k: v for k, v in asdict(cfg).items() if k not in ("workers", "ckpt_every", "out", "device")}
        self.t0, self.before = time.time(), 0.0

    def elapsed(self) -> float:
        """Wall seconds of this run plus those of the interrupted runs it resumes."""
        return self.before + time.time() - self.t0

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("key") != self.key:
            print(f"{self.path}: saved with other settings; starting afresh", file=sys.stderr)
            return None
        self.before = float(state.get("elapsed_s", 0.0))
        return state

    def save(self, state: dict[str, Any]) -> None:
        state = {**state, "key": self.key, "elapsed_s": self.elapsed()}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)


# ---------------------------------------------------------------- stage 1: codecs

def _same_length(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop mels to common frames: the causal audio decoder returns 4T-3 frames for T latents."""
    n = min(a.shape[2], b.shape[2])
    return a[:, :, :n], b[:, :, :n]


def _codec_losses(video: VideoCodec, audio: AudioCodec | None, x: torch.Tensor, mel: torch.Tensor | None, noise: float,
                  gen_dev: torch.Generator | None):
    zv = video.encoder(x)
    zv_n = zv + noise * torch.randn(zv.shape, device=zv.device, generator=gen_dev)
    rec = video.decoder(zv_n)
    v_loss = F.l1_loss(rec.float(), x) + F.mse_loss(rec.float(), x)
    if audio is None:  # the audio codec is kept as it is
        return v_loss, torch.zeros((), device=x.device), 1e-3 * zv.float().pow(2).mean()
    za = audio.encode_mel(mel)
    za_n = za + noise * torch.randn(za.shape, device=za.device, generator=gen_dev)
    mel_rec = audio.decode_mel(za_n)
    a_loss = F.l1_loss(*_same_length(mel_rec.float(), mel))
    reg = 1e-3 * (zv.float().pow(2).mean() + za.float().pow(2).mean())  # keeps latent scale bounded against the noise
    return v_loss, a_loss, reg


@torch.no_grad()
def codec_metrics(video: VideoCodec, audio: AudioCodec, frames: torch.Tensor, waves: torch.Tensor, device: str) -> dict[str, float]:
    """Reconstruction PSNR (dB) and log-mel L1 on clips (no latent noise), in batches of 8."""
    video.eval(), audio.eval()
    se, l1, n = 0.0, 0.0, 0
    for i in range(0, len(frames), 8):
        x = to_video_tensor(frames[i : i + 8]).to(device)
        rec = video.decode(video.encode(x))
        se += F.mse_loss(rec, x, reduction="sum").item()
        mel = audio.mel(waves[i : i + 8].to(device))
        rec_mel, mel = _same_length(audio.decode_mel(audio.encode_mel(mel)), mel)
        l1 += F.l1_loss(rec_mel, mel, reduction="sum").item()
        n += len(x)
    mse = se / (n * frames[0].numel())
    mel_l1 = l1 / (n * mel[0].numel())
    return {"video_psnr_db": round(10 * math.log10(4.0 / mse), 3), "mel_l1": round(mel_l1, 4)}


def train_codecs(cfg: PretrainConfig, pool_frames: torch.Tensor, pool_waves: torch.Tensor, eval_frames, eval_waves, ckpt: Checkpoint, state, record):
    device = cfg.device
    torch.manual_seed(cfg.seed)
    if cfg.video_codec_from:  # continue a trained codec: its layout wins over latent_channels / spatial
        source = Path(cfg.video_codec_from) / VIDEO_CODEC_FILE
        video = VideoCodec.load(source, device).float()
        record["video_codec_from"] = {"folder": cfg.video_codec_from, "sha256": sha256_file(source)}
    else:
        video = VideoCodec(video_codec_config(cfg.latent_channels, cfg.spatial)).to(device)
    if cfg.audio_codec_from:
        audio, train_audio = AudioCodec.load(Path(cfg.audio_codec_from) / AUDIO_CODEC_FILE, device), False
    else:
        audio, train_audio = AudioCodec().to(device), True
    params = [*video.parameters(), *(audio.parameters() if train_audio else [])]
    opt = torch.optim.AdamW(params, lr=cfg.codec_lr, weight_decay=0.0)
    start = 0
    if state and state.get("stage") == 1:
        video.load_state_dict(state["video"]), audio.load_state_dict(state["audio"]), opt.load_state_dict(state["opt"])
        start = state["step"]
    if not train_audio:
        record["audio_codec_from"] = {"folder": cfg.audio_codec_from, "sha256": sha256_file(Path(cfg.audio_codec_from) / AUDIO_CODEC_FILE)}
    record["codec_eval_before"] = record.get("codec_eval_before") or codec_metrics(video, audio, eval_frames, eval_waves, device)
    video.train(), audio.train(train_audio)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    losses: list[list[float]] = record.setdefault("codec_losses", [])
    # the pool lives where training runs (uint8: 1024 clips of 49x128x128 are 2.5 GB), so a batch is one gather
    pool_frames = pool_frames.to(device)
    pending: list[torch.Tensor] = []
    bar = tqdm(range(start, cfg.codec_steps), desc="stage 1: codecs", initial=start, total=cfg.codec_steps)
    t_start = time.time()
    for step in bar:
        if cfg.max_codec_seconds is not None and time.time() - t_start > cfg.max_codec_seconds:
            record["codec_stopped_early"] = {"step": step, "of": cfg.codec_steps, "reason": f"--max-codec-seconds {cfg.max_codec_seconds:g}"}
            break
        gen.manual_seed(cfg.seed * 1_000_003 + step)  # batch of a step is fixed: resuming replays the same data
        idx = torch.randint(len(pool_frames), (cfg.codec_batch,), generator=gen)
        x = to_video_tensor(_windows(pool_frames, idx, cfg.codec_frames, gen))
        mel = None
        if train_audio:
            with torch.no_grad():
                mel = audio.mel(pool_waves[idx].to(device))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.codec_steps, cfg.codec_lr, max(1, cfg.codec_steps // 20),
                                 time_frac(t_start, cfg.max_codec_seconds))
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.startswith("cuda")):
            v_loss, a_loss, reg = _codec_losses(video, audio if train_audio else None, x, mel, cfg.latent_noise, None)
        loss = v_loss + a_loss + reg
        optimizer_step(opt, loss, params)
        pending.append(torch.stack([v_loss.detach(), a_loss.detach()]))
        if len(pending) == 25 or step + 1 == cfg.codec_steps or (step + 1) % cfg.ckpt_every == 0:  # few device syncs
            _flush_losses(pending, losses, bar, ("video", "mel"))
        if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.codec_steps:
            ckpt.save({"stage": 1, "step": step + 1, "video": video.state_dict(), "audio": audio.state_dict(),
                       "opt": opt.state_dict(), "record": json_safe(record)})

    if pending:  # stopped early between flushes
        _flush_losses(pending, losses, bar, ("video", "mel"))
    # latent statistics of the raw encoder means over the pool: afterwards latents are ~unit variance
    video.eval(), audio.eval()
    with torch.no_grad():
        zs, zas = [], []
        for i in range(0, min(len(pool_frames), 512), 16):
            zs.append(video.encode(to_video_tensor(pool_frames[i : i + 16])).float())
            if train_audio:
                zas.append(audio.encode(pool_waves[i : i + 16].to(device)).float())
        zv = torch.cat(zs).transpose(0, 1).flatten(1)  # (C, everything)
        video.set_latent_stats(zv.mean(1), zv.std(1))
        if train_audio:  # a kept audio codec already has its statistics
            za = torch.cat(zas)
            za = za.permute(0, 2, 1, 3).flatten(2).flatten(0, 1)  # (B*T, C*M), ltx-core's audio token layout
            audio.set_latent_stats(za.mean(0), za.std(0))
    record["codec_eval_after"] = codec_metrics(video, audio, eval_frames, eval_waves, device)
    return video, audio


# ---------------------------------------------------------------- stage 2: transformer + text encoder

@torch.no_grad()
def encode_pool(cfg: PretrainConfig, video: VideoCodec, audio: AudioCodec, seeds: list[int], desc: str):
    """Render clips for ``seeds`` and encode them: ``(video latents, audio latents, captions, face token masks)`` on
    the CPU (the masks ``(N, f, h, w)`` bool from :func:`face_token_mask`)."""
    zv, za, caps, faces = [], [], [], []
    batch_f, batch_w = [], []

    def flush() -> None:
        x = to_video_tensor(np.stack(batch_f)).to(cfg.device)
        zv.append(video.encode(x).float().cpu())
        za.append(audio.encode(torch.as_tensor(np.stack(batch_w)).to(cfg.device)).float().cpu())
        batch_f.clear(), batch_w.clear()

    for frames, wave, caption, boxes in render_clips(cfg, seeds, desc):
        batch_f.append(frames), batch_w.append(wave), caps.append(caption), faces.append(boxes)
        if len(batch_f) == 32:
            flush()
    if batch_f:
        flush()
    zv_all = torch.cat(zv)
    grid, size = tuple(zv_all.shape[2:]), (cfg.height, cfg.width)
    return zv_all, torch.cat(za), caps, torch.from_numpy(np.stack([face_token_mask(b, grid, size) for b in faces]))


def train_transformer(cfg: PretrainConfig, video: VideoCodec, audio: AudioCodec, zv_pool, za_pool, caps, face_pool, eval_set,
                      ckpt: Checkpoint, state, record, other_pool: torch.Tensor | None = None, eval_other: torch.Tensor | None = None):
    device = cfg.device
    config = preset_config("tiny")  # the transformer reads the codec's latents: its in/out channels follow them
    config["transformer"]["in_channels"] = config["transformer"]["out_channels"] = video.latent_channels
    if cfg.transformer_from:  # continue a pretrained base (its text encoder learned with it)
        src = Path(cfg.transformer_from)
        model = load_pretrained_tiny(src, device=device)
        text = TextEncoder.load(src / TEXT_ENCODER_FILE, device).train()
        record["transformer_from"] = {"folder": str(src), "sha256": sha256_file(src / TINY_TRANSFORMER_FILE)}
        if (src / TRANSFORMER_RECORD_FILE).is_file():  # that base was itself continued: keep the chain's history
            record["transformer_from"]["record"] = json.loads((src / TRANSFORMER_RECORD_FILE).read_text())
    else:
        model = build_transformer(config, seed=cfg.seed).to(device)
        text = TextEncoder(vocab=toy_vocabulary()).to(device)
    torch.manual_seed(cfg.seed)
    params = [*model.parameters(), *text.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    start = 0
    if state and state.get("stage") == 2 and "model" in state:
        model.load_state_dict(state["model"]), text.load_state_dict(state["text"]), opt.load_state_dict(state["opt"])
        start = state["step"]
    layout = TokenLayout.build(video, audio, text, zv_pool, za_pool, caps, cfg.fps, device)
    ev_zv, ev_za, ev_caps, ev_face = eval_set
    record["fm_eval_before"] = record.get("fm_eval_before") or fm_eval(model, text, layout, ev_zv, ev_za, ev_caps, device,
                                                                       eval_other, ev_face)
    model.train(), text.train()
    forward = torch.compile(model) if cfg.compile else model  # shares the parameters; checkpoints save `model`
    zv_pool, za_pool = zv_pool.to(device), za_pool.to(device)  # the whole pool fits: no loader needed
    other_pool = other_pool.to(device) if other_pool is not None else None
    face_pool = face_pool.flatten(1).to(device)  # (N, tokens) in patchify order
    pad = text.index["<pad>"]
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    noise_gen = torch.Generator(device=device)
    losses: list[list[float]] = record.setdefault("fm_losses", [])
    pending: list[torch.Tensor] = []
    bar = tqdm(range(start, cfg.steps), desc="stage 2: transformer", initial=start, total=cfg.steps)
    t_start = time.time()
    for step in bar:
        if cfg.max_train_seconds is not None and time.time() - t_start > cfg.max_train_seconds:
            record["stopped_early"] = {"step": step, "of": cfg.steps, "reason": f"--max-train-seconds {cfg.max_train_seconds:g}"}
            break
        gen.manual_seed(cfg.seed * 7_000_003 + step)  # batch of a step is fixed: resuming replays the same data
        noise_gen.manual_seed(cfg.seed * 7_000_003 + step)
        idx = torch.randint(len(zv_pool), (cfg.batch,), generator=gen).to(device)
        sigma = sample_sigmas(cfg.batch, cfg.sigma_shift, gen).to(device)
        drop = (torch.rand(cfg.batch, generator=gen) < cfg.caption_dropout).to(device)
        nv = torch.randn((cfg.batch, *zv_pool.shape[1:]), generator=noise_gen, device=device)
        na = torch.randn((cfg.batch, *za_pool.shape[1:]), generator=noise_gen, device=device)
        tokens, mask = layout.tokens[idx], layout.mask[idx]
        # a dropped caption is the empty prompt: <bos> alone, as TextEncoder.encode([""]) gives
        blank = drop[:, None] & (torch.arange(tokens.shape[1], device=device) > 0)
        tokens, mask = torch.where(blank, pad, tokens), torch.where(blank, 0, mask)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr, max(1, min(300, cfg.steps // 10)),
                                 time_frac(t_start, cfg.max_train_seconds))
        first = (torch.rand(cfg.batch, generator=gen) < cfg.first_frame_p).to(device) if cfg.first_frame_p > 0 else None
        append = weight = None
        if cfg.keyframe_p > 0 or cfg.other_shot_p > 0:
            u = torch.rand(1, generator=gen).item()
            if u < cfg.keyframe_p:  # frame 0 half the time (where image-to-video sits), else any frame
                k = 0 if torch.rand(1, generator=gen).item() < 0.5 else int(torch.randint(zv_pool.shape[2], (1,), generator=gen))
                append = (zv_pool[idx, :, k : k + 1], k)
            elif u < cfg.keyframe_p + cfg.other_shot_p:
                append = (other_pool[idx], 0)
                if cfg.face_weight != 1:  # reading the person in the other shot pays where the person is
                    weight = 1 + (cfg.face_weight - 1) * face_pool[idx].float()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.startswith("cuda")):
            lv, la = flow_matching_loss(forward, text, layout, zv_pool[idx], za_pool[idx], tokens, mask, sigma, nv, na, first,
                                        append, weight)
        loss = lv + la
        optimizer_step(opt, loss, params)
        pending.append(torch.stack([lv.detach(), la.detach()]))
        if len(pending) == 25 or step + 1 == cfg.steps or (step + 1) % cfg.ckpt_every == 0:  # few device syncs
            _flush_losses(pending, losses, bar, ("video", "audio"))
        if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
            ckpt.save({"stage": 2, "step": step + 1, "model": model.state_dict(), "text": text.state_dict(),
                       "opt": opt.state_dict(), "record": json_safe(record)})
    if pending:  # stopped early between flushes
        _flush_losses(pending, losses, bar, ("video", "audio"))
    record["fm_eval_after"] = fm_eval(model, text, layout, ev_zv, ev_za, ev_caps, device, eval_other, ev_face)
    return model.eval(), text.eval()


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """A record as plain JSON values (what checkpoints and record files store)."""
    return json.loads(json.dumps(record))


def _summ(losses: list[list[float]], n: int) -> dict[str, list[float]]:
    first = np.mean(losses[:n], axis=0).round(5).tolist()
    last = np.mean(losses[-n:], axis=0).round(5).tolist()
    return {"first": first, "last": last}


def pretrain(cfg: PretrainConfig, command: list[str] | None = None) -> dict[str, Any]:
    """Run both stages into ``cfg.out``; returns the record also written to ``pretrain_record.json``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ckpt = Checkpoint(out, cfg)
    state = ckpt.load()
    record: dict[str, Any] = dict(state["record"]) if state else {}
    record.update({"command": command or sys.argv, "config": asdict(cfg), "torch": torch.__version__})

    held_out = eval_seeds(cfg.seed, cfg.eval_clips)
    ev = list(render_clips(cfg, held_out, "render eval clips"))
    eval_frames = torch.from_numpy(np.stack([e[0] for e in ev]))
    eval_waves = torch.from_numpy(np.stack([e[1] for e in ev]))

    codec_files = [out / VIDEO_CODEC_FILE, out / AUDIO_CODEC_FILE]
    if cfg.from_codecs and not (state and state.get("stage") == 2):
        src = Path(cfg.from_codecs)
        for f in codec_files:
            if (src / f.name).resolve() != f.resolve():
                with atomic_path(f) as tmp:
                    shutil.copyfile(src / f.name, tmp)
        record["codecs_from"] = {"folder": str(src), "sha256": {f.name: sha256_file(f) for f in codec_files}}
        if (src / RECORD_FILE).is_file():  # the stage-1 facts of the run that trained them
            before = json.loads((src / RECORD_FILE).read_text())
            record["codecs_from"]["record"] = {k: v for k, v in before.items() if k.startswith(("codec", "stage1")) and k != "codecs_from"}
        video, audio = VideoCodec.load(codec_files[0], cfg.device), AudioCodec.load(codec_files[1], cfg.device)
        record["codec_eval_after"] = codec_metrics(video, audio, eval_frames, eval_waves, cfg.device)
        state = None
    elif state and state.get("stage") == 2:
        video, audio = VideoCodec.load(codec_files[0], cfg.device), AudioCodec.load(codec_files[1], cfg.device)
    else:
        seeds = [TRAIN_SEED_BASE + cfg.seed * 1_000_000 + i for i in range(cfg.codec_pool)]
        pool = list(render_clips(cfg, seeds, "render codec pool"))
        pool_frames = torch.from_numpy(np.stack([p[0] for p in pool]))
        pool_waves = torch.from_numpy(np.stack([p[1] for p in pool]))
        del pool
        t1 = time.time()
        video, audio = train_codecs(cfg, pool_frames, pool_waves, eval_frames, eval_waves, ckpt, state, record)
        record["codec_wall_s"] = round(time.time() - t1, 1)
        record["codec_loss_summary"] = _summ(record["codec_losses"], min(10, len(record["codec_losses"])))
        del pool_frames, pool_waves
        # shipped files are float16; continue from exactly what ships
        video.save(codec_files[0]), audio.save(codec_files[1])
        video, audio = VideoCodec.load(codec_files[0], cfg.device), AudioCodec.load(codec_files[1], cfg.device)
        state = None
        ckpt.save({"stage": 2, "step": 0, "record": json_safe(record)})

    seeds = [TRAIN_SEED_BASE + cfg.seed * 1_000_000 + i for i in range(cfg.latent_pool)]
    zv, za, caps, faces = encode_pool(cfg, video, audio, seeds, "render+encode latent pool")
    record["latent_std"] = {"video": round(zv.std().item(), 4), "audio": round(za.std().item(), 4)}
    eval_set = encode_pool(cfg, video, audio, held_out[:32], "encode eval clips")
    other = eval_other = None
    if cfg.other_shot_p > 0:
        other = encode_frames(cfg, video, render_other_shots(cfg, seeds, "render other shots"))
        eval_other = encode_frames(cfg, video, render_other_shots(cfg, held_out[:32], "render other shots (eval)"))
    t2 = time.time()
    model, text = train_transformer(cfg, video, audio, zv, za, caps, faces, eval_set, ckpt, state, record, other, eval_other)
    record["transformer_wall_s"] = round(time.time() - t2, 1)
    record["fm_loss_summary"] = _summ(record["fm_losses"], min(20, len(record["fm_losses"])))

    save_transformer(_half_copy(model), out / "transformer.safetensors")
    text.save(out / TEXT_ENCODER_FILE)
    record["sha256"] = {n: sha256_file(out / n) for n in (TINY_TRANSFORMER_FILE, TEXT_ENCODER_FILE)}
    record["parameters"] = {"video_codec": count_parameters(video), "audio_codec": count_parameters(audio),
                            "text_encoder": count_parameters(text), "transformer": count_parameters(model)}
    names = ["transformer.safetensors", VIDEO_CODEC_FILE, AUDIO_CODEC_FILE, TEXT_ENCODER_FILE, "vocab.json"]
    record["file_mb"] = {n: round((out / n).stat().st_size / 1e6, 3) for n in names}
    record["total_mb"] = round(sum(record["file_mb"].values()), 3)
    record["wall_s"] = round(ckpt.elapsed(), 1)
    record["device_name"] = torch.cuda.get_device_name() if cfg.device.startswith("cuda") else "cpu"
    # per-step losses stay in the record only in summarized form, plus a thinned curve
    for key in ("codec_losses", "fm_losses"):
        full = record.pop(key, None)
        if full is None:  # stage 1 skipped (--from-codecs)
            continue
        stride = max(1, len(full) // 200)
        record[key.replace("losses", "curve")] = {"stride": stride, "values": full[::stride]}
    write_json_atomic(out / RECORD_FILE, record)
    ckpt.path.unlink(missing_ok=True)
    return record


def _half_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to(torch.float16).cpu()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="ltxic toy pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data_samples/tiny", help="folder for the weights and pretrain_record.json")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="every stage for a few steps on tiny clips (CPU, < 60 s)")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="stage 2 (transformer) steps")
    p.add_argument("--codec-steps", type=int, help="stage 1 (codec) steps")
    p.add_argument("--batch", type=int)
    p.add_argument("--codec-batch", type=int)
    p.add_argument("--latent-pool", type=int, help="clips rendered and encoded for stage 2")
    p.add_argument("--codec-pool", type=int, help="clips rendered for stage 1")
    p.add_argument("--workers", type=int, help="render processes (0: all cores)")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--max-train-seconds", type=float, help="end stage 2 after this long and save (the record says where it stopped)")
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer for stage 2 (GPU: fewer, fused kernels)")
    p.add_argument("--from-codecs", metavar="DIR", help="skip stage 1 and train the transformer on these codecs (a folder with "
                   f"{VIDEO_CODEC_FILE} and {AUDIO_CODEC_FILE})")
    p.add_argument("--lr", type=float, help="stage 2 peak learning rate")
    p.add_argument("--codec-lr", type=float, help="stage 1 peak learning rate")
    p.add_argument("--codec-frames", type=int, help="stage 1 trains on random windows of this many frames (8k+1)")
    p.add_argument("--latent-channels", type=int, help="video latent channels (the transformer's in_channels follow)")
    p.add_argument("--spatial", type=int, choices=(8, 16), help="the video codec's spatial compression (default 8, the shipped codec's)")
    p.add_argument("--audio-codec-from", metavar="DIR", help=f"stage 1 trains the video codec only and keeps DIR/{AUDIO_CODEC_FILE}")
    p.add_argument("--max-codec-seconds", type=float, help="end stage 1 after this long (the record says where it stopped)")
    p.add_argument("--video-codec-from", metavar="DIR", help=f"stage 1 continues DIR/{VIDEO_CODEC_FILE} (encoder and decoder)")
    p.add_argument("--latent-noise", type=float, help="std of the noise on codec latents in stage 1 (default 0.1)")
    p.add_argument("--transformer-from", metavar="DIR", help="stage 2 continues DIR's transformer and text encoder "
                   "(with --from-codecs DIR: more pretraining of a shipped base)")
    p.add_argument("--first-frame-p", type=float, help="share of stage-2 clips whose first latent frame is given clean "
                   "at timestep 0 (image-to-video; default 0)")
    p.add_argument("--keyframe-p", type=float, help="share of stage-2 steps that append one latent frame of each clip as "
                   "clean tokens at its own positions (ltx-core's keyframe conditioning; default 0)")
    p.add_argument("--other-shot-p", type=float, help="share of stage-2 steps that append, at frame 0's positions, a clean "
                   "frame of each clip's person from another shot (the way an IC reference portrait enters; default 0)")
    p.add_argument("--face-weight", type=float, help="on steps with another shot appended, the face's tokens weigh this "
                   "much in the video loss (the rest 1; default 1): taking the person from the shot pays more")
    p.add_argument("--other-shot-closeup", action="store_true", help="the other shots are close-ups, the face as large "
                   "as in a reference portrait (default: any framing)")
    args = p.parse_args(argv)
    cfg = PretrainConfig.smoke_config(args.out) if args.smoke else PretrainConfig(out=args.out, device=args.device)
    if not args.smoke and not cfg.device.startswith("cuda"):
        cfg.workers = 0
    for name in ("seed", "steps", "codec_steps", "batch", "codec_batch", "latent_pool", "codec_pool", "workers", "from_codecs", "lr",
                 "codec_lr", "codec_frames", "latent_channels", "spatial", "audio_codec_from", "max_codec_seconds",
                 "video_codec_from", "latent_noise", "transformer_from", "first_frame_p", "keyframe_p", "other_shot_p",
                 "face_weight"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.no_bf16:
        cfg.bf16 = False
    cfg.compile = args.compile
    cfg.other_shot_closeup = cfg.other_shot_closeup or args.other_shot_closeup
    cfg.max_train_seconds = args.max_train_seconds
    record = pretrain(cfg, command=["python", "-m", "ltxic.models.tiny_pretrain", *(argv if argv is not None else sys.argv[1:])])
    print({k: record[k] for k in ("codec_eval_after", "fm_eval_before", "fm_eval_after", "total_mb", "wall_s")})
    return record


if __name__ == "__main__":
    main()
