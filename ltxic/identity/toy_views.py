"""Helpers the toy embedders and the toy face locator train with: rendering in worker processes, and the tiny
kit's codec round trips (:class:`CodecViews`), so that the embedders learn to see identity through the decoder's blur."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ltxic.io.progress import progress as tqdm


def parallel_iter(fn, jobs: list, workers: int, desc: str):
    """Results in job order as they come (for pools too large to hold twice)."""
    if workers <= 1:
        yield from (fn(j) for j in tqdm(jobs, desc=desc))
        return
    with ProcessPoolExecutor(workers) as ex:
        yield from tqdm(ex.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8))), total=len(jobs), desc=desc)


def parallel(fn, jobs: list, workers: int, desc: str) -> list:
    return list(parallel_iter(fn, jobs, workers, desc))


class CodecViews:
    """Round trips through the tiny kit's codecs: the blur and Griffin-Lim phase of every generated clip.

    Generated frames and voices only ever reach the embedders through these decoders, so embedders trained with
    such views (``--codec-views``) compare a generated clip with a clean reference on identity, not sharpness.
    """

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", batch: int = 64) -> None:
        from ltxic.models.codecs import AudioCodec, VideoCodec
        from ltxic.models.tiny import AUDIO_CODEC_FILE, VIDEO_CODEC_FILE

        self.folder, self.device, self.batch = Path(folder), torch.device(device), batch
        self.video = VideoCodec.load(self.folder / VIDEO_CODEC_FILE, self.device).eval()
        self.audio = AudioCodec.load(self.folder / AUDIO_CODEC_FILE, self.device).eval()

    @torch.no_grad()
    def frames(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips (N, F, H, W, 3) with F = 8k+1 -> their decoded round trips, same shape."""
        from ltxic.models.tiny_pretrain import to_video_tensor

        out = []
        for i in range(0, len(clips), self.batch):
            x = to_video_tensor(clips[i : i + self.batch]).to(self.device)
            y = self.video.decode(self.video.encode(x))
            out.append(y.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def waves(self, waves: np.ndarray) -> np.ndarray:
        """float waveforms (..., N) at 16 kHz -> their round trips (encoder, decoder, Griffin-Lim), same shape."""
        n = waves.shape[-1]
        flat = torch.from_numpy(np.asarray(waves, np.float32)).reshape(-1, 1, n)
        out = []
        for i in range(0, len(flat), self.batch):
            y = self.audio.decode(self.audio.encode(flat[i : i + self.batch].to(self.device)))[:, 0]
            y = F.pad(y, (0, max(0, n - y.shape[-1])))[:, :n]
            out.append(y.cpu().numpy())
        return np.concatenate(out).reshape(waves.shape)


__all__ = ["CodecViews", "parallel", "parallel_iter"]
