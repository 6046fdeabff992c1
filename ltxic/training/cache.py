"""Preprocessing: encode each dataset entry once into a content-hashed cache of safetensors files.

Per entry the cache holds the clip's video latent (at its resolution bucket), the clip's audio latent, the
caption's text embeddings, and the reference image and reference audio latents. An entry's key hashes the bytes
of its media files, its caption, its bucket, the reference downscale factor and the identity of the codec and
text-encoder weights: a changed clip or caption is re-encoded, nothing else is.

Layout of ``cache_dir``::

    <key>.safetensors   tensors of one entry; its metadata holds the entry (identity, caption, bucket, fps, ...)
    index.json          the entries of the last build in dataset order, and the skip report
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ltxic.data import dataset as dataset_schema
from ltxic.io import media
from ltxic.io.files import atomic_path, sha256_file, write_json_atomic
from ltxic.models.latents import VideoGeometry

CACHE_FORMAT = 1
INDEX_FILE = "index.json"
SPLITS = ("train", "eval")
# A clip is cropped to a bucket's aspect ratio; beyond this fraction of its width or height lost, it does not fit.
MAX_CROP = 0.25

Bucket = tuple[int, int, int]  # (width, height, frames)


class DatasetError(dataset_schema.DatasetError):
    """dataset.json or a file it names cannot be used; each line names the file, the field and the fix."""

    def __init__(self, dataset_file: Path, problems: list[str]) -> None:
        self.dataset_file = dataset_file
        self.problems = problems
        n = len(problems)
        if n == 1:
            super().__init__(f"{dataset_file}: {problems[0]}")
        else:
            super().__init__(f"{dataset_file}: {n} problems:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class DatasetEntry:
    index: int
    identity: str
    video_path: Path
    caption: str
    split: str = "train"
    reference_image: Path | None = None
    reference_audio: Path | None = None


@dataclass(frozen=True)
class CachedEntry:
    """One encoded entry: where its tensors are and what they came from."""

    key: str
    path: Path
    index: int
    identity: str
    split: str
    caption: str
    video_path: str
    bucket: Bucket
    fps: float


@dataclass
class SkippedEntry:
    index: int
    video_path: str
    reason: str


@dataclass
class CacheReport:
    cache_dir: Path
    entries: list[CachedEntry] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    encoded: int = 0  # entries encoded by this build
    reused: int = 0  # entries found in the cache


# ------------------------------------------------------------------------------------------ dataset.json


def _as_bucket(value: Any) -> Bucket:
    """A bucket from ``ResolutionBucket``-like objects, ``(w, h, f)`` or ``"WxHxF"``."""
    if hasattr(value, "width"):
        return (int(value.width), int(value.height), int(value.frames))
    if isinstance(value, str):
        value = value.lower().split("x")
    w, h, f = (int(v) for v in value)
    return (w, h, f)


def _bucket_str(b: Bucket) -> str:
    return f"{b[0]}x{b[1]}x{b[2]}"


def read_dataset(dataset_file: str | os.PathLike[str], splits: Iterable[str] = SPLITS) -> list[DatasetEntry]:
    """Parse ``dataset.json`` (schema: :func:`ltxic.data.dataset.load_dataset`) and check what encoding needs.

    Checks, all at once, each naming its field and the fix: the clip and the reference files exist and are not
    empty, the caption is not empty, and the identity's consent record covers the media used (``face`` always,
    ``voice`` with a ``reference_audio``; as :func:`ltxic.data.dataset.require_consent`). Returns the entries of ``splits``.
    """
    path = Path(dataset_file)
    data = dataset_schema.load_dataset(path)
    root = path.parent
    problems: list[str] = []
    entries: list[DatasetEntry] = []
    splits = set(splits)

    def media(raw: str | None, where: str) -> Path | None:
        if not raw:
            return None
        p, problem = dataset_schema.locate_media(root, raw, data.allow_outside_paths)
        if problem:
            problems.append(f"{where}: {problem}")
        return p

    for i, entry in enumerate(data.entries):
        at = f"entries[{i}]"
        video = media(entry.video_path, f"{at}.video_path")
        if not entry.caption.strip():
            problems.append(f"{at}.caption: empty; describe the scene and the action (not the person's looks)")
        ref_image = media(entry.reference_image, f"{at}.reference_image")
        ref_audio = media(entry.reference_audio, f"{at}.reference_audio")
        record = data.identities.get(entry.identity)
        if record is None or record.consent is None:
            problems.append(
                f"{at}.identity: {entry.identity!r} has no consent record (identities.{entry.identity}.consent with "
                "subject, granted_by, media, date, scope); consent is required before reference media are encoded"
            )
        else:
            allowed = dataset_schema.consented_media(data, entry.identity)
            for medium, fld in (("face", "video_path"), ("voice", "reference_audio")):
                if getattr(entry, fld) and medium not in allowed:
                    problems.append(f"{at}.{fld}: the consent of {entry.identity!r} does not cover '{medium}' "
                                    f"(identities.{entry.identity}.consent.media)")
        if video is not None and entry.split in splits:
            entries.append(DatasetEntry(i, entry.identity, video, entry.caption.strip(), entry.split, ref_image, ref_audio))
    if problems:
        raise DatasetError(path, problems)
    return entries


# ------------------------------------------------------------------------------------------------ buckets


def _crop_fraction(width: int, height: int, bucket: Bucket) -> float:
    clip_ar, bucket_ar = width / height, bucket[0] / bucket[1]
    return 1.0 - min(clip_ar / bucket_ar, bucket_ar / clip_ar)


def choose_bucket(width: int, height: int, frames: int, buckets: Sequence[Any]) -> tuple[Bucket | None, str]:
    """The largest bucket the clip fits (no upscaling, at most :data:`MAX_CROP` cropped, enough frames).

    Returns ``(bucket, "")`` or ``(None, why no bucket fits)``.
    """
    options = [_as_bucket(b) for b in buckets]
    fits = [
        b for b in options
        if frames >= b[2] and width >= b[0] and height >= b[1]
        and _crop_fraction(width, height, b) <= MAX_CROP
    ]
    if fits:
        return max(fits, key=lambda b: (b[0] * b[1] * b[2], -_crop_fraction(width, height, b))), ""
    shortest = min(b[2] for b in options)
    if frames < shortest:
        return None, f"{frames} frames, fewer than the shortest bucket's {shortest}"
    long_enough = [b for b in options if frames >= b[2]]
    listing = ", ".join(_bucket_str(b) for b in long_enough)
    return None, (
        f"{width}x{height} fits no bucket with at most {frames} frames ({listing}): buckets must not be larger "
        f"than the clip and their aspect ratio within {MAX_CROP:.0%} of its {width / height:.2f}"
    )


# ----------------------------------------------------------------------------------------------- hashing


def weights_identity(obj: Any) -> str:
    """A digest of an encoder's identity: its ``fingerprint`` attribute, else its class and all its weights."""
    fingerprint = getattr(obj, "fingerprint", None)
    if isinstance(fingerprint, str):
        return fingerprint
    h = hashlib.sha256(f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
    modules = [obj] if isinstance(obj, torch.nn.Module) else [v for v in vars(obj).values() if isinstance(v, torch.nn.Module)]
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(str(tensor.dtype).encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def entry_key(entry: DatasetEntry, bucket: Bucket, reference_downscale_factor: int, encoders: str) -> str:
    parts = {
        "format": CACHE_FORMAT,
        "video": sha256_file(entry.video_path),
        "reference_image": sha256_file(entry.reference_image) if entry.reference_image else None,
        "reference_audio": sha256_file(entry.reference_audio) if entry.reference_audio else None,
        "caption": entry.caption,
        "bucket": list(bucket),
        "reference_downscale_factor": reference_downscale_factor,
        "encoders": encoders,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------------------------- encoding


def video_pixels(frames_uint8: Any, width: int, height: int) -> torch.Tensor:
    """uint8 ``(F, H, W, 3)`` -> ``(1, 3, F, height, width)`` in [-1, 1]."""
    x = torch.as_tensor(frames_uint8).permute(0, 3, 1, 2).float()
    x = media.resize_cover_crop(x, width, height)
    return (x / 127.5 - 1.0).clamp(-1, 1).permute(1, 0, 2, 3).unsqueeze(0)


def mono_waveform(waveform: torch.Tensor, samples: int | None = None) -> torch.Tensor:
    """``(C, N)`` -> ``(1, 1, N)``, cropped or zero-padded to ``samples`` when given."""
    w = torch.as_tensor(waveform).float()
    w = w.mean(0) if w.ndim == 2 else w.reshape(-1)
    if samples is not None:
        w = F.pad(w[:samples], (0, max(0, samples - w.shape[0])))
    return w.reshape(1, 1, -1)


def _encode_entry(entry, bucket, fps, factor, video_codec, audio_codec, text_encoder, with_audio, device, dtype,
                  references: dict | None = None, clock: Any = None) -> dict[str, torch.Tensor]:
    """Latents and text context of one entry. ``references`` memoizes reference latents within one cache build:
    an identity's reference image and voice are shared by all its clips, and the reference voice (5-15 s) costs
    more to encode than the clip itself."""
    references = {} if references is None else references
    stage = clock if clock is not None else (lambda name: contextlib.nullcontext())

    width, height, frames = bucket
    tensors: dict[str, torch.Tensor] = {}
    clip = media.read_video(entry.video_path)
    if clip.shape[0] < frames:
        raise media.MediaError(f"{entry.video_path}: decodes to {clip.shape[0]} frames, fewer than the bucket's {frames}; the file is truncated")
    with torch.no_grad():
        with stage("video encode"):
            tensors["video_latent"] = video_codec.encode(video_pixels(clip[:frames], width, height).to(device))
        if with_audio:
            sr = audio_codec.geometry.sample_rate
            wave = media.read_video_audio(entry.video_path, sr)
            with stage("audio encode"):
                tensors["audio_latent"] = audio_codec.encode(mono_waveform(wave, round(frames / fps * sr)).to(device))
        with stage("text encode"):
            v_ctx, a_ctx, mask = text_encoder.encode([entry.caption])
        tensors.update(video_context=v_ctx, audio_context=a_ctx, context_mask=mask)
        if entry.reference_image is not None:
            key = ("image", str(entry.reference_image), width // factor, height // factor)
            if key not in references:
                image = media.read_image(entry.reference_image)
                with stage("video encode"):
                    references[key] = video_codec.encode(video_pixels(image[None], width // factor, height // factor).to(device))
            tensors["reference_image_latent"] = references[key]
        if entry.reference_audio is not None:
            key = ("audio", str(entry.reference_audio))
            if key not in references:
                sr = audio_codec.geometry.sample_rate
                wave, _ = media.read_audio(entry.reference_audio, sr)
                with stage("audio encode"):
                    references[key] = audio_codec.encode(mono_waveform(wave).to(device))
            tensors["reference_audio_latent"] = references[key]
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        out[k] = (v.to(dtype) if v.is_floating_point() else v).contiguous()
    return out


def _is_readable(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as fh:
            return "video_latent" in fh.keys()
    except (SafetensorError, OSError, ValueError):
        return False


def build_cache(
    dataset_file: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    video_codec: Any,
    audio_codec: Any,
    text_encoder: Any,
    buckets: Sequence[Any],
    reference_downscale_factor: int = 1,
    splits: Iterable[str] = ("train",),
    with_audio: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    clock: Any = None,
    share: tuple[int, int] | None = None,
) -> CacheReport:
    """Encode every entry of ``splits`` that is not cached yet; return what is cached and what was skipped.

    ``clock`` (a :class:`ltxic.io.profiling.StageClock`) times the video, audio and text encoders.
    ``share=(rank, world_size)`` encodes only the entries ``rank, rank + world_size, ...`` and writes no index
    (multi-process training: every rank encodes its share, then a plain call lists the whole cache, which is
    the same cache a single process writes).

    Raises :class:`DatasetError` (all problems of dataset.json at once, or a clip that cannot be decoded)
    and, when no clip fits any bucket, a :class:`DatasetError` carrying the skip report.
    """
    from ltxic.io.progress import progress as tqdm



    dataset_file = Path(dataset_file)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    bucket_list = [_as_bucket(b) for b in buckets]
    if not bucket_list:
        raise ValueError("no resolution buckets given (dataset.resolution_buckets)")
    geometry = getattr(video_codec, "geometry", VideoGeometry())
    for b in bucket_list:
        geometry.latent_size(b[2], b[1] // reference_downscale_factor, b[0] // reference_downscale_factor)
        geometry.latent_size(b[2], b[1], b[0])
    entries = read_dataset(dataset_file, splits)
    encoders = hashlib.sha256(
        "|".join(weights_identity(e) for e in (video_codec, audio_codec, text_encoder)).encode()
    ).hexdigest()
    report = CacheReport(cache_dir)
    references: dict = {}

    for position, entry in enumerate(tqdm(entries, desc="caching latents", unit="clip", disable=not progress)):
        if share is not None and position % share[1] != share[0]:
            continue
        field_name = f"entries[{entry.index}].video_path"
        try:
            info = media.probe_video(entry.video_path)
        except media.MediaError as err:
            raise DatasetError(dataset_file, [f"{field_name}: {err}"]) from err
        bucket, reason = choose_bucket(info.width, info.height, info.frames, bucket_list)
        if bucket is None:
            report.skipped.append(SkippedEntry(entry.index, str(entry.video_path), reason))
            continue
        if with_audio and not info.has_audio:
            report.skipped.append(SkippedEntry(entry.index, str(entry.video_path), "no audio track (the strategy trains on the clip's audio)"))
            continue
        key = entry_key(entry, bucket, reference_downscale_factor, encoders)
        path = cache_dir / f"{key}.safetensors"
        if _is_readable(path):
            report.reused += 1
        else:
            try:
                tensors = _encode_entry(entry, bucket, info.fps, reference_downscale_factor, video_codec, audio_codec,
                                        text_encoder, with_audio, device, dtype, references, clock)
            except media.MediaError as err:
                where = field_name
                for name in ("reference_image", "reference_audio"):
                    if str(getattr(entry, name)) in str(err):
                        where = f"entries[{entry.index}].{name}"
                raise DatasetError(dataset_file, [f"{where}: {err}"]) from err
            meta = {"identity": entry.identity, "split": entry.split, "caption": entry.caption,
                    "video_path": str(entry.video_path), "bucket": list(bucket), "fps": info.fps, "index": entry.index}
            size = sum(v.numel() * v.element_size() for v in tensors.values())
            with atomic_path(path, needed_bytes=size) as tmp:
                save_file(tensors, str(tmp), metadata={"ltxic_cache": json.dumps(meta), "format": str(CACHE_FORMAT)})
            report.encoded += 1
        report.entries.append(CachedEntry(key, path, entry.index, entry.identity, entry.split, entry.caption,
                                          str(entry.video_path), bucket, info.fps))

    if share is not None:
        return report
    write_json_atomic(cache_dir / INDEX_FILE, {
        "format": CACHE_FORMAT,
        "dataset_file": str(dataset_file),
        "entries": [{**asdict(e), "path": e.path.name, "bucket": _bucket_str(e.bucket)} for e in report.entries],
        "skipped": [asdict(s) for s in report.skipped],
    })
    if report.skipped:
        lines = "\n".join(f"  entries[{s.index}] {s.video_path}: {s.reason}" for s in report.skipped)
        print(f"skipped {len(report.skipped)} of {len(entries)} clips (report in {cache_dir / INDEX_FILE}):\n{lines}")
    if not report.entries:
        raise DatasetError(dataset_file, [
            f"entries[{s.index}].video_path: {s.reason}" for s in report.skipped
        ] + ["no clip fits any of the buckets " + ", ".join(_bucket_str(b) for b in bucket_list)
             + ": add a bucket that fits the clips (dataset.resolution_buckets)"])
    return report


def load_cached(entry: CachedEntry | str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of one cached entry."""
    path = entry.path if isinstance(entry, CachedEntry) else Path(entry)
    tensors = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {})["ltxic_cache"])
        for name in fh.keys():
            tensors[name] = fh.get_tensor(name)
    return tensors, meta
