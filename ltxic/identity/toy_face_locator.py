"""A learned face-box locator for toy frames as the tiny kit's decoders draw them.

:func:`ltxic.toy.locate.locate_face` finds a face by its eyes and mouth, which works on clean toy frames.
The tiny video codec blurs them away, though, and every generated clip reaches the metrics through that
codec. On codec round trips of held-out toy clips the rule-based locator boxed the shirt instead of the face
on most frames (``face_locator_record.json``: ``rule_based`` rows), so every face similarity of a generated
clip compared a crop of the shoulders. This small CNN is trained on clean frames *and* their codec round
trips, with the renderer's true face boxes as targets, so it finds the face at either sharpness.

    ltxic toy locator --out data_samples/tiny --codec-views data_samples/tiny --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ltxic.io.progress import progress as tqdm

from ltxic.io.files import atomic_path, write_json_atomic

LOCATOR_FILE = "face_locator.safetensors"
RECORD_FILE = "face_locator_record.json"
INPUT_SIZE = 64
# identity seeds of the locator's training clips and of its held-out check; disjoint from the embedders' ranges
TRAIN_SEED_BASE, HELD_OUT_SEED_BASE = 5_000_000, 5_900_000
TRAIN_COMMAND = "ltxic toy locator --out data_samples/tiny --codec-views data_samples/tiny"


class FaceLocator(nn.Module):
    """CNN on a 64x64 frame -> a face-present logit and the visible-skin box (cx, cy, w, h) in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 3 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):  # 64 -> 32 -> 16 -> 8 -> 4 -> 2
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 4, 128), nn.ReLU(inplace=True), nn.Linear(128, 5))

    @staticmethod
    def to_input(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> float (N, 3, 64, 64) in [-1, 1]."""
        x = torch.from_numpy(np.array(frames, np.uint8)).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="area")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.features(x))
        return out[:, 0], torch.sigmoid(out[:, 1:])

    @torch.no_grad()
    def locate(self, frames: np.ndarray, batch: int = 256) -> list[tuple[int, int, int, int] | None]:
        """Boxes (x0, y0, x1, y1), exclusive pixel bounds, of uint8 frames (N, H, W, 3); None where no face."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected uint8 (N, H, W, 3) or (H, W, 3), got shape {frames.shape}")
        device = next(self.parameters()).device
        h, w = frames.shape[1:3]
        out: list[tuple[int, int, int, int] | None] = []
        for i in range(0, len(frames), batch):
            logit, box = self(self.to_input(frames[i : i + batch], device))
            for present, (cx, cy, bw, bh) in zip((logit > 0).tolist(), box.float().cpu().tolist()):
                if not present:
                    out.append(None)
                    continue
                x0, x1 = round((cx - bw / 2) * w), round((cx + bw / 2) * w)
                y0, y1 = round((cy - bh / 2) * h), round((cy + bh / 2) * h)
                x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
                out.append((x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None)
        return out


_CACHE: dict[str, FaceLocator] = {}


def load_face_locator(dir: str | Path | None = None) -> FaceLocator | None:
    """The shipped (or given) locator from ``dir`` (default ``data_samples/tiny``), on the CPU; None if the file is
    absent (callers then use the rule-based :func:`ltxic.toy.locate.locate_face`)."""
    from safetensors.torch import load_file

    from ltxic.models.transformer import TINY_DIR as DEFAULT_DIR

    path = (Path(dir) if dir is not None else DEFAULT_DIR) / LOCATOR_FILE
    key = str(path.resolve())
    if key not in _CACHE:
        if not path.is_file():
            return None
        model = FaceLocator()
        try:
            model.load_state_dict(load_file(str(path)), strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: does not match the current FaceLocator ({err}); retrain with `{TRAIN_COMMAND}`") from err
        _CACHE[key] = model.eval()
    return _CACHE[key]


# ----------------------------------------------------------------------------------------------- data
@dataclass
class LocatorConfig:
    out: str = "data_samples/tiny"
    codec_views: str | None = None
    clips: int = 2400
    frames_per_clip: int = 4
    empty_frames: int = 800
    held_out_clips: int = 200
    steps: int = 3000
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0
    workers: int = 0
    device: str = "cpu"


def _render(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 25-frame toy clip of identity ``seed`` in a random scene, and its true face boxes."""
    from ltxic.toy.identity import make_identity
    from ltxic.toy.render import render_clip
    from ltxic.toy.scene import random_scene

    seed, clip_seed = job
    clip = render_clip(make_identity(seed), random_scene(np.random.default_rng([seed, clip_seed])), seed=clip_seed, frames=25)
    return clip.frames, clip.truth.face_box


def _empty_rooms(n: int, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Rooms with nobody in them: a wall colour, a floor band and a lighting gradient (negatives)."""
    out = np.empty((n, size, size, 3), np.uint8)
    x = np.linspace(-0.5, 0.5, size, dtype=np.float32)[None, :, None]
    for i in range(n):
        wall, floor = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
        img = np.broadcast_to(wall, (size, size, 3)).copy()
        img[int(size * rng.uniform(0.7, 0.95)) :] = floor
        out[i] = np.clip(img * (1 + rng.uniform(-0.12, 0.12) * x), 0, 255).astype(np.uint8)
    return out


def build_pool(
    cfg: LocatorConfig, seeds: list[int], clip_seed: int, codec=None, desc: str = "render"
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, 128, 128, 3) and targets (N, 5) = (present, cx, cy, w, h); with ``codec`` each picked frame also
    comes as its codec round trip (same target)."""
    from ltxic.identity.toy_views import parallel_iter

    rng = np.random.default_rng(cfg.seed + clip_seed)
    frames, targets = [], []
    chunk: list[tuple[np.ndarray, np.ndarray]] = []

    def flush() -> None:
        clips = np.stack([c for c, _ in chunk])
        views = [clips] if codec is None else [clips, codec.frames(clips)]
        h, w = clips.shape[2:4]
        for k, (_, boxes) in enumerate(chunk):
            picks = rng.choice(25, size=cfg.frames_per_clip, replace=False)
            picked = []
            for x0, y0, x1, y1 in boxes[picks]:
                present = (x1 - x0) * (y1 - y0) > 0
                picked.append([float(present), (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
            for v in views:  # per clip: the clean picks, then the same picks' round trips
                frames.append(v[k, picks])
                targets.extend(picked)
        chunk.clear()

    jobs = [(s, clip_seed + i) for i, s in enumerate(seeds)]
    for item in parallel_iter(_render, jobs, cfg.workers or os.cpu_count() or 1, desc):
        chunk.append(item)
        if len(chunk) == 64:
            flush()
    if chunk:
        flush()
    return np.concatenate(frames), np.asarray(targets, np.float32)


# ----------------------------------------------------------------------------------------------- training
def box_loss(logit: torch.Tensor, box: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Presence BCE plus, on frames with a face, L1 of (cx, cy, w, h) and 1 - IoU."""
    present = target[:, 0]
    loss = F.binary_cross_entropy_with_logits(logit, present)
    m = present > 0.5
    if m.any():
        p, t = box[m], target[m, 1:]
        loss = loss + 5 * (p - t).abs().mean() + (1 - _iou(p, t)).mean()
    return loss


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of (cx, cy, w, h) boxes, row by row."""
    a0, a1 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b0, b1 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.minimum(a1, b1) - torch.maximum(a0, b0)).clamp_min(0).prod(1)
    return inter / (a[:, 2:].prod(1) + b[:, 2:].prod(1) - inter + 1e-9)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x0, y0, x1, y1) pixel boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def train_locator(cfg: LocatorConfig, frames: np.ndarray, targets: np.ndarray) -> tuple[FaceLocator, list[float]]:
    """Fit a :class:`FaceLocator` on uint8 frames and (present, cx, cy, w, h) targets; brightness jitter and flips."""
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = FaceLocator().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all = torch.cat([FaceLocator.to_input(frames[i : i + 2048], device) for i in range(0, len(frames), 2048)])
    t_all = torch.from_numpy(targets).to(device)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    losses: list[float] = []
    model.train()
    for _ in tqdm(range(cfg.steps), desc="train face locator"):
        idx = torch.randint(len(x_all), (cfg.batch,), generator=gen).to(device)
        x, t = x_all[idx].clone(), t_all[idx].clone()
        # lighting: a per-frame gain and offset, as the scenes' light levels and the codec's colour drift
        gain = 1 + 0.25 * (torch.rand(len(x), 1, 1, 1, generator=gen).to(device) - 0.5)
        shift = 0.1 * (torch.rand(len(x), 3, 1, 1, generator=gen).to(device) - 0.5)
        x = ((x + 1) * gain - 1 + shift).clamp(-1, 1)
        flip = (torch.rand(len(x), generator=gen) < 0.5).to(device)
        x[flip] = x[flip].flip(-1)
        t[flip, 1] = 1 - t[flip, 1]
        logit, box = model(x)
        loss = box_loss(logit, box, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def check(locate, frames: np.ndarray, targets: np.ndarray) -> dict:
    """How a locator (frames -> list of boxes or None) does against true boxes: hits (IoU >= 0.5), misses, mean IoU."""
    h, w = frames.shape[1:3]
    boxes = locate(frames)
    ious, missed, false_alarms, faces = [], 0, 0, 0
    for b, t in zip(boxes, targets):
        if t[0] < 0.5:
            false_alarms += b is not None
            continue
        faces += 1
        cx, cy, bw, bh = t[1] * w, t[2] * h, t[3] * w, t[4] * h
        truth = (round(cx - bw / 2), round(cy - bh / 2), round(cx + bw / 2), round(cy + bh / 2))
        if b is None:
            missed += 1
            ious.append(0.0)
        else:
            ious.append(box_iou(b, truth))
    ious_arr = np.asarray(ious)
    return {"faces": faces, "hit_rate_iou_0.5": round(float((ious_arr >= 0.5).mean()), 4),
            "mean_iou": round(float(ious_arr.mean()), 4),
            "missed": missed, "empty_frames": int((targets[:, 0] < 0.5).sum()), "false_alarms": int(false_alarms)}


def run(cfg: LocatorConfig, command: list[str] | None = None) -> dict:
    """Render the pools, train, compare with the rule-based locator on held-out identities, save weights + record."""
    from safetensors.torch import save_file

    from ltxic.identity.toy_views import CodecViews
    from ltxic.toy.locate import locate_faces

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    codec = CodecViews(cfg.codec_views, cfg.device) if cfg.codec_views else None
    views = 1 if codec is None else 2
    frames, targets = build_pool(cfg, [TRAIN_SEED_BASE + i for i in range(cfg.clips)], 0, codec, "render training clips")
    rng = np.random.default_rng(cfg.seed + 7)
    empty = _empty_rooms(cfg.empty_frames, rng)
    if codec is not None:  # round trips of empty rooms need 8k+1 frames: a 9-frame still clip each, first frame kept
        empty = np.concatenate([empty, codec.frames(np.repeat(empty[:, None], 9, 1))[:, 0]])
    frames = np.concatenate([frames, empty])
    targets = np.concatenate([targets, np.zeros((len(empty), 5), np.float32)])
    t_render = time.time() - t0
    model, losses = train_locator(cfg, frames, targets)
    t_train = time.time() - t0 - t_render

    hf, ht = build_pool(cfg, [HELD_OUT_SEED_BASE + i for i in range(cfg.held_out_clips)], 10_000, codec, "render held-out clips")
    he = _empty_rooms(100, np.random.default_rng(cfg.seed + 8))
    model.cpu()
    per_clip = cfg.frames_per_clip
    groups = hf.reshape(-1, views, per_clip, *hf.shape[1:])
    tgroups = ht.reshape(-1, views, per_clip, 5)
    held: dict[str, dict] = {}
    for v, name in enumerate(["clean", "codec_round_trip"][:views]):
        f = groups[:, v].reshape(-1, *hf.shape[1:])
        t = tgroups[:, v].reshape(-1, 5)
        if v == 0:
            f, t = np.concatenate([f, he]), np.concatenate([t, np.zeros((len(he), 5), np.float32)])
        held[name] = {"learned": check(model.locate, f, t), "rule_based": check(locate_faces, f, t)}

    path = out / LOCATOR_FILE
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"format": "ltxic-toy-face-locator", "input_size": str(INPUT_SIZE)})
    stride = max(1, len(losses) // 200)
    record = {
        "command": command or sys.argv, "config": cfg.__dict__, "torch": torch.__version__, "platform": platform.platform(),
        "train_identity_seeds": f"{TRAIN_SEED_BASE}..{TRAIN_SEED_BASE + cfg.clips - 1}",
        "held_out_identity_seeds": f"{HELD_OUT_SEED_BASE}..{HELD_OUT_SEED_BASE + cfg.held_out_clips - 1}",
        "training_frames": int(len(frames)), "params": sum(p.numel() for p in model.parameters()),
        "wall_time_s": {"render": round(t_render, 1), "train": round(t_train, 1), "total": round(time.time() - t0, 1)},
        "final_loss_mean_50": round(float(np.mean(losses[-50:])), 4),
        "loss_curve": {"stride": stride, "values": [round(v, 4) for v in losses[::stride]]},
        "held_out": held, "file_bytes": path.stat().st_size,
    }
    write_json_atomic(out / RECORD_FILE, record)
    _CACHE.pop(str(path.resolve()), None)
    return record


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="ltxic toy locator",
                                description="Train the toy face locator (clean frames and codec round trips).")
    p.add_argument("--out", default="data_samples/tiny", help=f"folder for {LOCATOR_FILE} and {RECORD_FILE}")
    p.add_argument("--codec-views", metavar="DIR",
                   help="also train on round trips through the codecs in DIR (what generated clips look like)")
    p.add_argument("--clips", type=int, default=LocatorConfig.clips)
    p.add_argument("--steps", type=int, default=LocatorConfig.steps)
    p.add_argument("--batch", type=int, default=LocatorConfig.batch)
    p.add_argument("--lr", type=float, default=LocatorConfig.lr)
    p.add_argument("--held-out-clips", type=int, default=LocatorConfig.held_out_clips)
    p.add_argument("--workers", type=int, default=0, help="render processes (0: all cores, 1: in this process)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    cfg = LocatorConfig(out=args.out, codec_views=args.codec_views, clips=args.clips, steps=args.steps, batch=args.batch,
                        lr=args.lr, held_out_clips=args.held_out_clips, workers=args.workers, device=args.device)
    record = run(cfg, ["python", "-m", "ltxic.identity.toy_face_locator", *(argv if argv is not None else sys.argv[1:])])
    print(json.dumps(record["held_out"], indent=1))
    return record


if __name__ == "__main__":
    main()
