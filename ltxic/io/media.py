"""Video, audio and image files: mp4 (H.264 + AAC) through PyAV, wav through soundfile, jpg/png through Pillow.

Writes are atomic and deterministic (same frames and audio give the same bytes); reads of a missing, corrupt or
truncated file raise :class:`MediaError` naming the file and what is wrong. Resampling uses torchaudio's
transforms (torchaudio's own file I/O needs torchcodec, which ltxic does not use).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltxic.io.errors import InputError
from ltxic.io.files import atomic_path

PathLike = str | os.PathLike[str]
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}
AUDIO_CONTAINER_SUFFIXES = {".m4a", ".aac", ".mp3"} | VIDEO_SUFFIXES

# Fixed encoder settings: one thread, fixed GOP and no B-frames keep the output bit-identical run to run.
_X264_OPTIONS = {"crf": "20", "preset": "medium", "g": "48", "bf": "0", "threads": "1", "tune": "stillimage"}
LARGE_FRAME_PIXELS = 512 * 512  # above this, x264 runs on 8 threads (write_video)
_MUX_OPTIONS = {"fflags": "+bitexact", "flags": "+bitexact", "movflags": "+faststart"}


# Reference portraits are stored at most this large: the model sees them at its bucket size (at most 1024 px).
MAX_STORED_IMAGE_SIDE = 2048


class MediaError(InputError, ValueError):
    """A media file could not be read or written; the message names the file, what is wrong and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool
    audio_sample_rate: int | None
    rotation: int = 0  # degrees counter-clockwise the file's display matrix asks for; width/height are as displayed


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded frame turned as the file's rotation metadata asks (as players and ffmpeg show it)."""
    k = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(frame, k)) if k else frame


def video_rotation(path: PathLike) -> int:
    """The rotation (degrees counter-clockwise, a multiple of 90) of a video's display matrix; 0 when none.

    Phones store portrait clips as landscape frames plus this metadata; ltxic applies it on every read."""
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return int(round((frame.rotation or 0) / 90)) * 90
    except (av.error.FFmpegError, OSError, IndexError):
        return 0
    return 0


def _existing(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise MediaError(f"{path}: a symbolic link that loops or points to nothing; replace it by the {what} file itself.")
        raise MediaError(f"{path}: {what} file not found. Check the path (relative paths are resolved from {Path.cwd()}).")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, expected a {what} file.")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: {what} file is empty (0 bytes); re-export or re-copy it.")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: permission denied reading the {what} file; give your user read access (chmod u+r).")
    return path


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise MediaError(f"{path}: not a readable video container ({err}); the file is corrupt, truncated or not a video.") from err


def _fps_of(stream, path: Path) -> Fraction:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    if not rate:
        raise MediaError(f"{path}: the video stream has no frame rate; re-encode it with a constant frame rate.")
    return Fraction(rate)


def probe_video(path: PathLike, check: bool = True) -> VideoInfo:
    """Frame count, fps, size, duration and audio presence of a video file, without decoding it.

    With ``check`` the packets are demuxed (cheap: nothing is decoded) so a truncated file is caught here too.
    """
    import av

    path = _existing(path, "video")
    rotation = video_rotation(path)
    with _open_container(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream.")
        vs = container.streams.video[0]
        fps = _fps_of(vs, path)
        frames = int(vs.frames)
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = frames / float(fps)
        if frames <= 0:  # containers without a frame count: estimate from the duration
            frames = round(duration * float(fps))
        audio = container.streams.audio[0] if container.streams.audio else None
        if check and vs.frames > 0:
            try:
                packets = sum(1 for p in container.demux(vs) if p.size > 0)
            except av.error.FFmpegError as err:
                raise MediaError(f"{path}: demuxing failed ({err}); the file is corrupt or truncated.") from err
            if packets < vs.frames:
                raise MediaError(
                    f"{path}: truncated video, the container declares {vs.frames} frames but holds {packets}. "
                    "Re-export or re-copy the file."
                )
        width, height = int(vs.codec_context.width), int(vs.codec_context.height)
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            path=path,
            frames=frames,
            fps=float(fps),
            width=width,
            height=height,
            duration=duration,
            has_audio=audio is not None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            rotation=rotation,
        )


def read_video(path: PathLike) -> np.ndarray:
    """All frames as uint8 RGB, shape (F, H, W, 3), turned upright as the file's rotation metadata asks."""
    import av

    path = _existing(path, "video")
    with _open_container(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream.")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        expected = int(vs.frames)
        frames = []
        try:
            for frame in container.decode(vs):
                frames.append(upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0))
        except av.error.FFmpegError as err:
            raise MediaError(f"{path}: decoding failed after {len(frames)} frames ({err}); the file is corrupt or truncated.") from err
    if not frames:
        raise MediaError(f"{path}: no video frames could be decoded; the file is corrupt or truncated.")
    if expected > 0 and len(frames) < expected:
        raise MediaError(
            f"{path}: truncated video, the container declares {expected} frames but only {len(frames)} decode. "
            "Re-export or re-copy the file."
        )
    return np.stack(frames)


def _decode_audio(path: Path) -> tuple[np.ndarray, int]:
    import av

    with _open_container(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio track.")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.reshape(len(frame.layout.channels), -1)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                chunks.append(arr.astype(np.float32) if arr.dtype.kind == "f" else _int_to_float(arr))
        except av.error.FFmpegError as err:
            raise MediaError(f"{path}: audio decoding failed ({err}); the file is corrupt or truncated.") from err
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
    if not chunks:
        raise MediaError(f"{path}: the audio track decodes to no samples; the file is corrupt or truncated.")
    audio = np.concatenate(chunks, axis=1)
    if duration is not None:  # drop the encoder's padding after the last real sample
        declared = max(1, round(duration * sr))
        if audio.shape[1] + 2048 < declared:  # more than two codec frames missing
            raise MediaError(
                f"{path}: truncated audio track, {declared} samples declared but {audio.shape[1]} decode. "
                "Re-export or re-copy the file."
            )
        audio = audio[:, :declared]
    return audio, sr


def _int_to_float(arr: np.ndarray) -> np.ndarray:
    return (arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)).astype(np.float32)


def read_video_audio(path: PathLike, sample_rate: int | None = None) -> torch.Tensor:
    """The audio track of a video file as float32 (channels, samples), resampled to ``sample_rate`` if given."""
    path = _existing(path, "video")
    audio, sr = _decode_audio(path)
    wav = torch.from_numpy(np.ascontiguousarray(audio))
    return resample(wav, sr, sample_rate) if sample_rate else wav


def _as_audio_array(audio, name: str = "audio") -> np.ndarray:
    arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] > 8 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (channels, samples) with 1-8 channels, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected floats in [-1, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf samples")
    return np.clip(arr, -1.0, 1.0).astype(np.float32)


def _padded_audio_length(n_frames: int, fps: Fraction, sample_rate: int) -> int:
    """Samples of audio that make the container duration cover every frame as ffmpeg prints it.

    ffmpeg prints a file's duration in centiseconds and moviepy counts frames as int(duration * fps), so a
    49-frame 24 fps clip (2.0417 s, printed 2.04) reads back as 48 frames. Padding the audio with silence up to
    the next centisecond that gives the right count (2.05 s) lets moviepy see every frame.
    """
    k = int(np.ceil(float(n_frames / fps) * 100 - 1e-6))
    while int((k / 100) * float(fps)) < n_frames:
        k += 1
    return int(np.ceil(k / 100 * sample_rate))


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float | Fraction,
    audio: np.ndarray | torch.Tensor | None = None,
    audio_sample_rate: int = 16000,
) -> Path:
    """Write an H.264 (yuv420p) mp4, with a mono/stereo AAC track if ``audio`` is given. Deterministic and atomic.

    Audio shorter than the video is padded with silence to a few milliseconds past the last frame (see
    ``_padded_audio_length``); longer audio is kept whole.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    n, h, w, _ = frames.shape
    if n == 0 or h % 2 or w % 2:
        raise ValueError(f"frames: need at least one frame and even width/height for yuv420p, got {frames.shape}")
    rate = Fraction(fps).limit_denominator(1001)
    wav = _as_audio_array(audio) if audio is not None else None
    if wav is not None:
        need = _padded_audio_length(n, rate, int(audio_sample_rate))
        if wav.shape[1] < need:
            wav = np.pad(wav, ((0, 0), (0, need - wav.shape[1])))

    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4", options=dict(_MUX_OPTIONS)) as container:
            # a fixed thread count keeps the bytes the same on every machine; frames larger than the course's are
            # encoded on 8 threads (a 960x576x121 clip: seconds instead of ten)
            threads = 1 if w * h <= LARGE_FRAME_PIXELS else 8
            vs = container.add_stream("libx264", rate=rate, options={**_X264_OPTIONS, "threads": str(threads)})
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.codec_context.thread_count = threads
            vs.codec_context.flags |= av.codec.context.Flags.bitexact
            as_ = None
            if wav is not None:
                layout = "mono" if wav.shape[0] == 1 else "stereo"
                if wav.shape[0] > 2:
                    raise ValueError(f"audio: mp4 output supports 1 or 2 channels, got {wav.shape[0]}")
                as_ = container.add_stream("aac", rate=int(audio_sample_rate), layout=layout)
                as_.codec_context.thread_count = 1
                as_.codec_context.flags |= av.codec.context.Flags.bitexact
                as_.bit_rate = 64000 * wav.shape[0]
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts = i
                for packet in vs.encode(frame):
                    container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
            if as_ is not None:
                step = as_.codec_context.frame_size or 1024
                for start in range(0, wav.shape[1], step):
                    chunk = np.ascontiguousarray(wav[:, start : start + step])
                    aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=as_.layout.name)
                    aframe.sample_rate = int(audio_sample_rate)
                    aframe.pts = start
                    for packet in as_.encode(aframe):
                        container.mux(packet)
                for packet in as_.encode():
                    container.mux(packet)
    return path


def read_audio(path: PathLike, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """Audio file (wav/flac/ogg via soundfile; m4a/mp4 via PyAV) as float32 (channels, samples) and its rate.

    With ``sample_rate`` the waveform is resampled and that rate returned.
    """
    import soundfile as sf

    path = _existing(path, "audio")
    if path.suffix.lower() in AUDIO_CONTAINER_SUFFIXES:
        arr, sr = _decode_audio(path)
    else:
        _check_riff_complete(path)
        try:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise MediaError(f"{path}: not a readable audio file ({err}); the file is corrupt, truncated or not audio.") from err
        if data.shape[0] == 0:
            raise MediaError(f"{path}: audio file holds no samples.")
        arr = data.T
    wav = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if sample_rate and sample_rate != sr:
        return resample(wav, sr, sample_rate), int(sample_rate)
    return wav, int(sr)


def _check_riff_complete(path: Path) -> None:
    """A wav whose RIFF header promises more bytes than the file holds was cut short (libsndfile reads it silently)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        promised = int.from_bytes(head[4:8], "little") + 8
        actual = path.stat().st_size
        if actual < promised:
            raise MediaError(
                f"{path}: truncated wav, the header promises {promised} bytes but the file has {actual}. "
                "Re-export or re-copy the file."
            )


def write_audio(path: PathLike, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write 16-bit PCM wav (or flac by suffix) from float (channels, samples) in [-1, 1]. Atomic."""
    import soundfile as sf

    path = Path(path)
    arr = _as_audio_array(waveform, "waveform")
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    with atomic_path(path, needed_bytes=arr.size * 2 + 44) as tmp:  # 16-bit samples and the header (wav: exact)
        sf.write(str(tmp), arr.T, int(sample_rate), subtype="PCM_16", format=fmt)
    return path


def read_image(path: PathLike) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    path = _existing(path, "image")
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except Image.DecompressionBombError as err:
        raise MediaError(f"{path}: the image claims more pixels than Pillow opens safely ({err}); resize it to at most "
                         f"{MAX_STORED_IMAGE_SIDE} px on its long side (a portrait needs no more) and use that copy.") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"{path}: not a readable image ({err}); the file is corrupt, truncated or not an image.") from err


def fit_within(img: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) scaled down (Lanczos, aspect kept) so its long side is at most ``max_side``."""
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS), dtype=np.uint8)


def write_image(path: PathLike, img: np.ndarray, quality: int = 95) -> Path:
    """Write uint8 RGB (H, W, 3) as jpg (by default) or png, chosen by the suffix. Atomic."""
    from PIL import Image

    path = Path(path)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"img: expected uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        kwargs = {"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}
        Image.fromarray(arr).save(tmp, format=fmt, **kwargs)
    return path


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, new_sr: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig_freq=orig_sr, new_freq=new_sr)


def resample(waveform: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio) of float (..., samples); returns a float32 tensor."""
    wav = waveform if isinstance(waveform, torch.Tensor) else torch.from_numpy(np.asarray(waveform))
    wav = wav.to(torch.float32)
    if int(orig_sr) == int(new_sr):
        return wav
    with torch.no_grad():
        return _resampler(int(orig_sr), int(new_sr))(wav)


def resize_cover_crop(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``(N, 3, H, W)`` float -> ``(N, 3, height, width)``: scale to cover, then center-crop.

    The one resize used for training clips (``ltxic.training.cache``) and for references at inference, so both see
    the same pixels.
    """
    h, w = frames.shape[-2:]
    scale = max(width / w, height / h)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frames[..., top : top + height, left : left + width]


def sample_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode only the frames at ``indices`` (uint8 RGB, upright); memory stays small for long, large clips."""
    import av

    want = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if k in want:
                    out[k] = upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                if k >= max(want):
                    break
    except (av.error.FFmpegError, OSError, IndexError) as err:
        raise MediaError(f"{path}: decoding failed ({err}); the file is corrupt, truncated or not a video.") from err
    return out
