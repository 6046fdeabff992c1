"""Toy identity embedders: a face CNN and a voice CNN that play ArcFace and a speaker encoder for the toy world.

Both map their input to an L2-normalised 64-d embedding; cosine similarity of two embeddings says "same
character?". They are trained contrastively (supervised contrastive loss over P identities x K views per batch)
on toy identities rendered on the fly, each view with its own pose, light, background, framing, action or speech
content, so the embedding keeps the identity's traits and drops the scene. Verification is measured as equal
error rate on held-out identities (seeds never used in training).

``python -m ltxic.identity.toy_embedders --out data_samples/tiny --steps 3000 [--device cpu|cuda]`` trains both and writes
``face_embedder.safetensors``, ``voice_embedder.safetensors`` and ``embedders_record.json``;
``--eval-only`` measures the held-out EER of the shipped weights again.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ltxic.io.progress import progress as tqdm

from ltxic.identity.toy_views import CodecViews, parallel, parallel_iter
from ltxic.io.files import atomic_path, write_json_atomic
from ltxic.models.transformer import TINY_DIR

if TYPE_CHECKING:
    from ltxic.identity.toy_face_locator import FaceLocator

DEFAULT_DIR = TINY_DIR  # the shipped tiny kit's folder, where the toy embedders live too
TRAIN_COMMAND = "python -m ltxic.identity.toy_embedders --out data_samples/tiny --steps 3000 --identities 1500"
FACE_FILE, VOICE_FILE, RECORD_FILE = "face_embedder.safetensors", "voice_embedder.safetensors", "embedders_record.json"
FACE_SIZE = 48
SAMPLE_RATE = 16000
EMBED_DIM = 64
# identity seeds: training draws from [0, n_train); held-out identities start here and never overlap
HELD_OUT_SEED_BASE = 7_000_000


# ----------------------------------------------------------------------------------------------- face crops
def face_crop(frame: np.ndarray, box: Sequence[int], size: int = FACE_SIZE) -> np.ndarray:
    """A square uint8 (size, size, 3) crop around a face-skin box (x0, y0, x1, y1), widened to take in the hair.

    The locator's box is the visible skin; the crop is centred a little above it and 1.45x its longer side,
    so hairline, hair style and face shape are in view. Edges are padded by replicating border pixels.
    """
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    side = max(8, int(round(1.45 * max(w, h))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.15 * h
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    img = np.asarray(frame)
    pad = side
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    crop = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)


def locate_and_crop(frames: np.ndarray, size: int = FACE_SIZE, locator: FaceLocator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face crops (F, size, size, 3) uint8 of each frame and a bool mask (F,) of frames with a located face.

    ``locator``: the learned :class:`~ltxic.identity.toy_face_locator.FaceLocator` (finds faces in blurry decoded frames too);
    None: the rule-based :func:`~ltxic.toy.locate.locate_face` (exact on clean frames, lost on decoded ones).
    Frames without a face get an all-zero crop (their mask entry is False).
    """
    from ltxic.toy.locate import locate_faces

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (F, H, W, 3) or (H, W, 3), got shape {frames.shape}")
    boxes = locate_faces(frames, locator)
    crops = np.zeros((len(frames), size, size, 3), np.uint8)
    found = np.zeros(len(frames), bool)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        if box is not None:
            crops[i], found[i] = face_crop(frame, box, size), True
    return crops, found


# ----------------------------------------------------------------------------------------------- models
def _block(cin: int, cout: int, pool: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class FaceEmbedder(nn.Module):
    """CNN on a 48x48 face crop -> L2-normalised 64-d embedding (about 0.2 M parameters)."""

    def __init__(self, dim: int = EMBED_DIM, size: int = FACE_SIZE):
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            _block(3, 24, pool=False), _block(24, 24), _block(24, 48, pool=False), _block(48, 48),  # 12x12
            _block(48, 96), _block(96, 128, pool=False),  # 6x6
        )
        self.head = nn.Linear(2 * 128, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (B, 3, size, size) in [-1, 1]."""
        h = self.features(x)
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        return F.normalize(self.head(h), dim=-1)

    @staticmethod
    def to_input(crops: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 (B, H, W, 3) crops -> float (B, 3, H, W) in [-1, 1]."""
        t = crops.to(device) if isinstance(crops, torch.Tensor) else torch.as_tensor(np.asarray(crops), device=device)
        return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    @torch.no_grad()
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, 64) float32 embeddings of uint8 face crops (B, size, size, 3)."""
        self.eval()
        device = next(self.parameters()).device
        out = [self(self.to_input(crops[i : i + 256], device)).cpu() for i in range(0, len(crops), 256)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.head.out_features), np.float32)

    def embed_frames(self, frames: np.ndarray, locator: FaceLocator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (F, 64) of the located face in each frame (NaN rows where no face was found) and the mask."""
        crops, found = locate_and_crop(frames, self.size, locator)
        emb = np.full((len(crops), self.head.out_features), np.nan, np.float32)
        if found.any():
            emb[found] = self.embed_crops(crops[found])
        return emb, found


class LogMel(nn.Module):
    """16 kHz waveform -> log-mel (80 bins, 10 ms hop, 64 ms window: fine enough to see low voice pitch)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_mels: int = 80):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1024, win_length=1024, hop_length=160, f_min=40.0, f_max=7600.0,
            n_mels=n_mels, power=2.0,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (B, N) -> (B, 1, n_mels, frames), normalised per utterance (loudness does not matter)."""
        x = torch.log(self.mel(wave) + 1e-6)
        x = x - x.mean((1, 2), keepdim=True)
        return (x / (x.std((1, 2), keepdim=True) + 1e-5)).unsqueeze(1)


class VoiceEmbedder(nn.Module):
    """CNN over a log-mel spectrogram, mean+std pooled over time -> L2-normalised 64-d embedding (~0.2 M params)."""

    def __init__(self, dim: int = EMBED_DIM, n_mels: int = 80):
        super().__init__()
        self.frontend = LogMel(SAMPLE_RATE, n_mels)
        self.features = nn.Sequential(_block(1, 32), _block(32, 48), _block(48, 64))  # mels / 8
        feat = 64 * (n_mels // 8)
        self.head = nn.Sequential(nn.Linear(2 * feat, 128), nn.ReLU(inplace=True), nn.Linear(128, dim))
        self.sample_rate = SAMPLE_RATE

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave: float (B, N) at 16 kHz."""
        h = self.features(self.frontend(wave))  # (B, C, F', T')
        h = h.flatten(1, 2)
        h = torch.cat([h.mean(-1), h.std(-1)], 1)
        return F.normalize(self.head(h), dim=-1)

    @torch.no_grad()
    def embed_waves(self, waves: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 64) embeddings of equal-length 16 kHz waveforms (B, N)."""
        self.eval()
        device = next(self.parameters()).device
        w = torch.as_tensor(np.asarray(waves, np.float32))
        out = [self(w[i : i + 256].to(device)).cpu() for i in range(0, len(w), 256)]
        return torch.cat(out).numpy() if out else np.zeros((0, EMBED_DIM), np.float32)

    def embed_windows(
        self, waveform: np.ndarray | torch.Tensor, sr: int, window_s: float = 1.0, hop_s: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sliding-window embeddings of a (channels, N) or (N,) waveform.

        Returns (embeddings (W, 64) with NaN rows for windows without speech, window start times in s (W,),
        voiced mask (W,)). A clip shorter than one window is one window, zero-padded.
        """
        from ltxic.identity.embedders import mono, voiced_mask

        wave = mono(waveform, sr, SAMPLE_RATE)
        win, hop = int(round(window_s * SAMPLE_RATE)), int(round(hop_s * SAMPLE_RATE))
        if len(wave) < win:
            wave = np.pad(wave, (0, win - len(wave)))
        starts = np.arange(0, len(wave) - win + 1, hop)
        windows = np.stack([wave[s : s + win] for s in starts])
        voiced = voiced_mask(windows)
        emb = np.full((len(windows), EMBED_DIM), np.nan, np.float32)
        if voiced.any():
            emb[voiced] = self.embed_waves(windows[voiced])
        return emb, starts / SAMPLE_RATE, voiced

    def embed_reference(self, waveform: np.ndarray | torch.Tensor, sr: int) -> np.ndarray:
        """One (64,) embedding of a reference recording: the normalised mean of its voiced 1 s windows."""
        emb, _, voiced = self.embed_windows(waveform, sr)
        if not voiced.any():
            raise ValueError("reference audio: no window has speech in it (all silent); give a clean voice recording")
        m = emb[voiced].mean(0)
        return (m / np.linalg.norm(m)).astype(np.float32)


@dataclass
class Embedders:
    """The pair of toy identity embedders, in eval mode, and the face locator shipped beside them (None: rule-based)."""

    face: FaceEmbedder
    voice: VoiceEmbedder
    locator: FaceLocator | None = None

    def to(self, device: str | torch.device) -> Embedders:
        self.face.to(device)
        self.voice.to(device)
        if self.locator is not None:
            self.locator.to(device)
        return self

    def face_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face embeddings (F, 64) of clip frames, clean or decoded, and the found-mask (see ``FaceEmbedder.embed_frames``)."""
        return self.face.embed_frames(frames, self.locator)


def _save_module(module: nn.Module, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})


def save_embedders(embedders: Embedders, out: str | Path) -> None:
    out = Path(out)
    _save_module(embedders.face, out / FACE_FILE, {"kind": "ltxic toy face embedder", "size": FACE_SIZE, "dim": EMBED_DIM})
    _save_module(embedders.voice, out / VOICE_FILE, {"kind": "ltxic toy voice embedder", "sample_rate": SAMPLE_RATE, "dim": EMBED_DIM})


_CACHE: dict[str, Embedders] = {}


def load_embedders(dir: str | Path | None = None, device: str | torch.device = "cpu") -> Embedders:
    """Load the shipped (or given) toy embedders from ``dir`` (default ``data_samples/tiny/``); cached per folder."""
    from safetensors.torch import load_file

    folder = Path(dir) if dir is not None else DEFAULT_DIR
    key = f"{folder.resolve()}|{device}"
    if key in _CACHE:
        return _CACHE[key]
    for name in (FACE_FILE, VOICE_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name}: toy embedder weights are missing. Create them with `{TRAIN_COMMAND}` "
                f"(add --out {folder} to write them there), or pass dir= the folder that holds {FACE_FILE} and {VOICE_FILE}."
            )
    face, voice = FaceEmbedder(), VoiceEmbedder()
    for module, name in ((face, FACE_FILE), (voice, VOICE_FILE)):
        state = load_file(str(folder / name))
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{folder / name}: does not match the current {type(module).__name__} ({err}); retrain with `{TRAIN_COMMAND}`") from err
        module.eval()
    from ltxic.identity.toy_face_locator import load_face_locator

    emb = Embedders(face, voice, load_face_locator(folder)).to(device)
    _CACHE[key] = emb
    return emb


# ----------------------------------------------------------------------------------------------- EER
def equal_error_rate(same: Sequence[float] | np.ndarray, different: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Equal error rate of verification scores and its threshold: (EER in [0, 1], threshold).

    ``same`` are scores of same-identity pairs, ``different`` of different-identity pairs (higher = more alike).
    A pair is accepted when its score >= threshold. At each candidate threshold the false-reject rate (same pairs
    below it) and false-accept rate (different pairs at or above it) are computed; the EER is their mean where
    they are closest. Perfect separation gives 0, identical score distributions about 0.5.
    """
    s, d = np.sort(np.asarray(same, np.float64)), np.sort(np.asarray(different, np.float64))
    if len(s) == 0 or len(d) == 0:
        raise ValueError("equal_error_rate: needs at least one same-identity and one different-identity score")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("equal_error_rate: scores must be finite (drop NaN scores of frames without a face first)")
    thresholds = np.concatenate([np.unique(np.concatenate([s, d])), [np.inf]])
    frr = np.searchsorted(s, thresholds, side="left") / len(s)
    far = 1.0 - np.searchsorted(d, thresholds, side="left") / len(d)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(thresholds[i])


def _pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    same = labels[:, None] == labels[None, :]
    return sim[iu][same[iu]], sim[iu][~same[iu]]


# ----------------------------------------------------------------------------------------------- toy data
def _render_faces(job: tuple) -> tuple:
    """Face crops of one identity: ``clips`` random scenes, ``per_clip`` random frames each (locator boxes).

    With a fifth job field ``True`` it also returns the clips' frames, the picked frame indices and the boxes,
    so the caller can crop the same faces from codec round trips of the clips (:class:`CodecViews`).
    """
    from ltxic.toy.identity import make_identity
    from ltxic.toy.locate import locate_face
    from ltxic.toy.render import render_clip
    from ltxic.toy.scene import random_scene

    id_seed, clips, per_clip, seed = job[:4]
    keep_frames = len(job) > 4 and job[4]
    identity = make_identity(id_seed)
    rng = np.random.default_rng([0xFACE, seed, id_seed])
    crops, misses, frames, picks = [], 0, [], []
    for c in range(clips):
        clip = render_clip(identity, random_scene(rng), seed=int(rng.integers(1 << 30)), frames=9)
        for f in rng.choice(9, per_clip, replace=False):
            box = locate_face(clip.frames[f])
            if box is None:  # rare; the true box keeps the batch shape (inference skips such frames)
                misses += 1
                box = clip.truth.face_box[f]
            crops.append(face_crop(clip.frames[f], box))
            picks.append((c, int(f), tuple(int(v) for v in box)))
        frames.append(clip.frames)
    if keep_frames:
        return np.stack(crops), misses, np.stack(frames), picks
    return np.stack(crops), misses


def _synth_voices(job: tuple[int, int, float, int]) -> np.ndarray:
    """``n`` utterances (n, seconds * 16 kHz) of one identity, each with its own speech content."""
    from ltxic.toy.identity import make_identity
    from ltxic.toy.voice import synthesize_speech

    id_seed, n, seconds, seed = job
    identity = make_identity(id_seed)
    rng = np.random.default_rng([0x701CE, seed, id_seed])
    return np.stack([synthesize_speech(identity, int(seconds * SAMPLE_RATE), rng)[0] for _ in range(n)])


def face_pool(seeds: Sequence[int], clips: int, per_clip: int, seed: int, workers: int,
              codec: CodecViews | None = None) -> tuple[np.ndarray, int]:
    """uint8 crops (identities, clips*per_clip, 48, 48, 3) and the number of frames the locator missed.

    With ``codec``, each identity also gets the same crops taken from the codec round trip of its clips:
    (identities, 2*clips*per_clip, ...), clean views first.
    """
    jobs = [(int(s), clips, per_clip, seed, codec is not None) for s in seeds]
    if codec is None:
        out = parallel(_render_faces, jobs, workers, "render faces")
        return np.stack([o[0] for o in out]), sum(o[1] for o in out)
    crops, misses = [], 0
    for clean, miss, frames, picks in parallel_iter(_render_faces, jobs, workers, "render faces + codec views"):
        degraded = codec.frames(frames)
        views = np.stack([face_crop(degraded[c, f], box) for c, f, box in picks])
        crops.append(np.concatenate([clean, views]))
        misses += miss
    return np.stack(crops), misses


def voice_pool(seeds: Sequence[int], n: int, seconds: float, seed: int, workers: int,
               codec: CodecViews | None = None) -> np.ndarray:
    """float16 utterances (identities, n, seconds * 16 kHz); with ``codec`` also their codec round trips
    (identities, 2n, ...), clean first."""
    out = np.stack(parallel(_synth_voices, [(int(s), n, seconds, seed) for s in seeds], workers, "synthesize voices"))
    if codec is not None:
        out = np.concatenate([out, codec.waves(out)], axis=1)
    return out.astype(np.float16)


# ----------------------------------------------------------------------------------------------- training
def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss of L2-normalised embeddings: pull same-label views together, push others apart."""
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, -1e9)
    log_prob = logits - torch.logsumexp(logits, 1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    return -(log_prob * pos).sum(1).div(pos.sum(1).clamp_min(1)).mean()


def _face_batch(pool: torch.Tensor, P: int, K: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randperm(pool.shape[0], generator=gen)[:P]
    views = torch.stack([torch.randperm(pool.shape[1], generator=gen)[:K] for _ in range(P)])
    x = pool[ids[:, None], views].flatten(0, 1)  # (P*K, 48, 48, 3) uint8 on device
    x = FaceEmbedder.to_input(x, x.device)
    flip = torch.rand(len(x), generator=gen) < 0.5
    x[flip.to(x.device)] = x[flip.to(x.device)].flip(-1)
    # small shifts and scale changes: the locator's box is not pixel-exact on generated frames
    theta = torch.zeros(len(x), 2, 3)
    scale = 1 + 0.1 * (torch.rand(len(x), generator=gen) - 0.5)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = 0.12 * (torch.rand(len(x), 2, generator=gen) - 0.5)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = (0.8 + 0.4 * torch.rand(len(x), 1, 1, 1, generator=gen)).to(x.device)
    x = ((x + 1) * gain - 1).clamp(-1, 1)
    return x, torch.arange(P).repeat_interleave(K).to(x.device)


def _voice_batch(pool: torch.Tensor, P: int, K: int, gen: torch.Generator, seconds: float = 1.0):
    ids = torch.randperm(pool.shape[0], generator=gen)[:P]
    views = torch.stack([torch.randperm(pool.shape[1], generator=gen)[:K] for _ in range(P)])
    utt = pool[ids[:, None], views].flatten(0, 1).float()  # (P*K, N)
    win = int(seconds * SAMPLE_RATE)
    starts = torch.randint(0, utt.shape[1] - win + 1, (len(utt),), generator=gen).to(utt.device)
    idx = starts[:, None] + torch.arange(win, device=utt.device)[None]
    x = torch.gather(utt, 1, idx)
    gain = (0.3 + 1.2 * torch.rand(len(x), 1, generator=gen)).to(x.device)
    noise = (0.01 * torch.rand(len(x), 1, generator=gen)).to(x.device)
    x = x * gain + noise * torch.randn(x.shape, generator=gen).to(x.device)
    return x, torch.arange(P).repeat_interleave(K).to(x.device)


def _train(model: nn.Module, batch_fn, steps: int, lr: float, desc: str, seed: int) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc)
    for _ in bar:
        x, y = batch_fn(gen)
        loss = supcon_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    return losses


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate(
    embedders: Embedders, n_identities: int = 100, clips: int = 4, seed: int = 1, workers: int = 1,
    codec: CodecViews | None = None,
) -> dict:
    """Held-out verification: EER of face and voice embeddings on identities with seeds never used in training.

    Face: one located-face frame per clip of ``clips`` random scenes per identity; pairs of frames (all pairs)
    and frame-vs-reference-portrait. Voice: a random 1 s window of each of ``clips`` 2 s utterances per
    identity; pairs of windows, and window-vs-reference (a 6 s recording) pairs. With ``codec`` also the
    codec round trips of the same frames and windows against the clean portrait and recording: how the metric sees a
    generated clip.
    """
    from ltxic.toy.identity import make_identity
    from ltxic.toy.render import render_portrait

    seeds = [HELD_OUT_SEED_BASE + i for i in range(n_identities)]
    crops, misses = face_pool(seeds, clips, 1, seed + 101, workers, codec)
    crops, codec_crops = crops[:, :clips], crops[:, clips:]
    labels = np.repeat(np.arange(n_identities), clips)
    f_emb = embedders.face.embed_crops(crops.reshape(-1, *crops.shape[2:]))
    portraits = np.stack([render_portrait(make_identity(s)) for s in seeds])
    p_crops, p_found = locate_and_crop(portraits)
    p_emb = embedders.face.embed_crops(p_crops)
    same, diff = _pair_scores(f_emb, labels)
    face_eer, face_thr = equal_error_rate(same, diff)
    ref_sim = f_emb @ p_emb.T
    ref_same = ref_sim[np.arange(len(labels)), labels]
    ref_diff = ref_sim[labels[:, None] != np.arange(n_identities)[None]]
    face_ref_eer, _ = equal_error_rate(ref_same, ref_diff)

    utts = voice_pool(seeds, clips, 2.0, seed + 202, workers, codec).astype(np.float32)
    utts, codec_utts = utts[:, :clips], utts[:, clips:]
    rng = np.random.default_rng(seed + 303)
    starts = rng.integers(0, utts.shape[2] - SAMPLE_RATE + 1, size=(n_identities, clips))
    windows = np.stack([utts[i, c, s : s + SAMPLE_RATE] for (i, c), s in np.ndenumerate(starts)])
    v_emb = embedders.voice.embed_waves(windows)
    same_v, diff_v = _pair_scores(v_emb, labels)
    voice_eer, voice_thr = equal_error_rate(same_v, diff_v)
    refs = voice_pool(seeds, 1, 6.0, seed + 404, workers).astype(np.float32)[:, 0]
    r_emb = np.stack([embedders.voice.embed_reference(r, SAMPLE_RATE) for r in refs])
    vr = v_emb @ r_emb.T
    voice_ref_eer, _ = equal_error_rate(vr[np.arange(len(labels)), labels], vr[labels[:, None] != np.arange(n_identities)[None]])
    codec_result = None
    if codec is not None:
        def vs_reference(emb: np.ndarray, ref: np.ndarray) -> dict:
            sim = emb @ ref.T
            same, diff = sim[np.arange(len(labels)), labels], sim[labels[:, None] != np.arange(n_identities)[None]]
            return {"eer": round(equal_error_rate(same, diff)[0], 4), "mean_same": round(float(same.mean()), 4),
                    "mean_different": round(float(diff.mean()), 4)}

        c_emb = embedders.face.embed_crops(codec_crops.reshape(-1, *codec_crops.shape[2:]))
        c_windows = np.stack([codec_utts[i, c, s : s + SAMPLE_RATE] for (i, c), s in np.ndenumerate(starts)])
        codec_result = {
            "codecs": str(codec.folder),
            "face_codec_frame_vs_portrait": vs_reference(c_emb, p_emb),
            "voice_codec_window_vs_reference": vs_reference(embedders.voice.embed_waves(c_windows), r_emb),
        }
    return {
        "held_out_identity_seeds": f"{seeds[0]}..{seeds[-1]}",
        "face": {
            "eer_frame_vs_frame": round(face_eer, 4), "threshold": round(face_thr, 4),
            "eer_frame_vs_portrait": round(face_ref_eer, 4),
            "mean_same": round(float(same.mean()), 4), "mean_different": round(float(diff.mean()), 4),
            "frames": int(len(f_emb)), "locator_misses": int(misses), "portraits_located": int(p_found.sum()),
        },
        "voice": {
            "eer_window_vs_window": round(voice_eer, 4), "threshold": round(voice_thr, 4),
            "eer_window_vs_reference": round(voice_ref_eer, 4),
            "mean_same": round(float(same_v.mean()), 4), "mean_different": round(float(diff_v.mean()), 4),
            "windows": int(len(v_emb)),
        },
        **({"codec_views": codec_result} if codec_result else {}),
    }


# ----------------------------------------------------------------------------------------------- CLI
def train_embedders(
    out: str | Path, steps: int = 3000, *, identities: int = 1500, clips: int = 6, device: str = "auto",
    seed: int = 0, workers: int | None = None, eval_identities: int = 100, command: str | None = None,
    init: str | Path | None = None, only: str = "both", lr: float = 3e-3, codec_views: str | Path | None = None,
) -> dict:
    """Render a pool of toy identities, train both embedders, measure held-out EER, save weights and record.

    ``init``: start from the weights in that folder (fine-tuning, e.g. after the toy world changed); its record,
    if any, is kept in the new record as ``init_record``;
    ``only="face"|"voice"``: train that one and keep the other from ``init``; ``codec_views``: a folder with the
    tiny codecs whose round trips join the training views and the evaluation (:class:`CodecViews`).
    """
    if only not in ("both", "face", "voice"):
        raise ValueError(f"only={only!r}: use both, face or voice")
    if only != "both" and init is None:
        raise ValueError(f"only={only!r} keeps the other embedder from --init; pass --init with the folder of its weights")
    t0 = time.time()
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    workers = workers or max(1, (os.cpu_count() or 1))
    torch.manual_seed(seed)
    seeds = list(range(identities))
    P, K = min(64, identities), 4
    if clips < K:
        raise ValueError(f"clips={clips}: each identity needs at least {K} utterances per batch; pass --clips {K} or more")
    train_face, train_voice = only in ("both", "face"), only in ("both", "voice")
    codec = CodecViews(codec_views, dev) if codec_views is not None else None
    faces, misses = face_pool(seeds, clips, 3, seed, workers, codec) if train_face else (None, 0)
    voices = voice_pool(seeds, clips, 2.0, seed, workers, codec) if train_voice else None
    t_data = time.time() - t0

    if init is not None:
        start = load_embedders(init)
        face, voice = copy.deepcopy(start.face).to(dev), copy.deepcopy(start.voice).to(dev)
    else:
        face, voice = FaceEmbedder().to(dev), VoiceEmbedder().to(dev)
    face_losses, voice_losses = [float("nan")], [float("nan")]
    t1 = time.time()
    if train_face:
        face_t = torch.from_numpy(faces).to(dev)
        face_losses = _train(face, lambda g: _face_batch(face_t, P, K, g), steps, lr, "train face embedder", seed)
    t_face = time.time() - t1
    t1 = time.time()
    if train_voice:
        voice_t = torch.from_numpy(voices).to(dev)
        voice_losses = _train(voice, lambda g: _voice_batch(voice_t, P, K, g), steps, lr, "train voice embedder", seed + 1)
    t_voice = time.time() - t1
    embedders = Embedders(face, voice)
    t1 = time.time()
    metrics = evaluate(embedders, eval_identities, 4, seed + 1, workers, codec)
    t_eval = time.time() - t1
    out = Path(out)
    save_embedders(embedders.to("cpu"), out)
    sizes = {name: (out / name).stat().st_size for name in (FACE_FILE, VOICE_FILE)}
    record = {
        "command": command or " ".join(["python -m ltxic.identity.toy_embedders", *sys.argv[1:]]),
        "seed": seed, "steps": steps, "trained": only, "init": str(init) if init is not None else None, "lr": lr,
        "codec_views": str(codec_views) if codec_views is not None else None,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_workers": workers, "torch": torch.__version__,
        "train_identities": f"seeds 0..{identities - 1}", "views_per_identity": {"face_frames": clips * 3, "voice_utterances_2s": clips},
        "batch": {"identities": P, "views": K}, "locator_misses_in_training_pool": int(misses),
        "wall_time_s": {"render_pool": round(t_data, 1), "train_face": round(t_face, 1), "train_voice": round(t_voice, 1),
                        "evaluate": round(t_eval, 1), "total": round(time.time() - t0, 1)},
        "final_loss": {"face": round(float(np.mean(face_losses[-50:])), 4), "voice": round(float(np.mean(voice_losses[-50:])), 4)},
        "params": {"face": sum(p.numel() for p in face.parameters()), "voice": sum(p.numel() for p in voice.parameters())},
        "file_bytes": sizes,
        "held_out": metrics,
    }
    if init is not None and (Path(init) / RECORD_FILE).is_file():
        # the weights' history: the record of the run this one started from, which nests its own start in turn
        record["init_record"] = json.loads((Path(init) / RECORD_FILE).read_text())
    write_json_atomic(out / RECORD_FILE, record)
    _CACHE.clear()
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.identity.toy_embedders", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="folder for the weights and embedders_record.json")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per embedder")
    parser.add_argument("--identities", type=int, default=1500, help="training identities (seeds 0..N-1)")
    parser.add_argument("--clips", type=int, default=6, help="rendered clips (and utterances) per training identity, >= 4")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes rendering the pool (default: all cores)")
    parser.add_argument("--eval-identities", type=int, default=100)
    parser.add_argument("--eval-only", action="store_true", help="measure held-out EER of the weights in --out")
    parser.add_argument("--init", default=None, help="start from the weights in this folder (fine-tune)")
    parser.add_argument("--only", default="both", choices=("both", "face", "voice"), help="train one embedder, keep the other from --init")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--codec-views", default=None, metavar="DIR",
                        help="also train and evaluate on round trips through the tiny codecs in DIR (what generated clips look like)")
    args = parser.parse_args(argv)
    if args.eval_only:
        t0 = time.time()
        codec = CodecViews(args.codec_views) if args.codec_views else None
        metrics = evaluate(load_embedders(args.out), args.eval_identities, 4, args.seed + 1, args.workers or os.cpu_count() or 1, codec)
        metrics["wall_time_s"] = round(time.time() - t0, 1)
        print(json.dumps(metrics, indent=2))
        return 0
    record = train_embedders(
        args.out, args.steps, identities=args.identities, clips=args.clips, device=args.device, seed=args.seed,
        workers=args.workers, eval_identities=args.eval_identities, init=args.init, only=args.only, lr=args.lr,
        codec_views=args.codec_views,
    )
    print(json.dumps({k: record[k] for k in ("wall_time_s", "final_loss", "held_out", "file_bytes")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
