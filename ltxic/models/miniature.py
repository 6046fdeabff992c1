"""A miniature of LTX-2.3's official files, laid out as a ComfyUI ``models/`` tree, built offline.

Why: the real assets (a 22B audio-video checkpoint, a 12B Gemma 3, upscalers, the distilled LoRA) are
~70 GB and need a GPU; CI has 2 CPU cores and no network. The miniature lets tests drive the *real* loading
path (ltx-core's configurators, key filters, LoRA fusion, Hugging Face tokenizer / image processor / Gemma
shards) end to end in seconds.

What is the same as the real files: file names and folders, safetensors key names and prefixes (every key is
derived by instantiating ltx-core's own classes and inverting ltx-core's own key filters), the ``config``
metadata schema (same sections and keys as ``ltxic/models/ltx23_config.json``, only sizes shrunk, plus an explicit
``transformer.audio_in_channels``), every structural choice (split RoPE, gated attention, cross-attention
AdaLN, V2 caption projection before the connectors, 32x spatial / 8x temporal VAE with the same block kinds,
stereo 16 kHz audio VAE with 64 mel bins and hop 160, vocoder + bandwidth extension to 48 kHz), the Gemma 3
folder layout (config, SentencePiece ``tokenizer.model`` + ``tokenizer.json``, image processor, two weight
shards + index with the multimodal QAT checkpoint's key names, including its transformers-4 nesting
``vision_tower.vision_model.*``) and bf16 storage.

What differs: only sizes and the weights, which are random (seeded, deterministic) but well scaled; the
per-channel latent statistics are mean ~0 / std ~1; the BWE's STFT and mel buffers are real Hann-DFT and
slaney-mel bases. The VAE per-channel statistics hold only the two buffers ltx-core reads
(``mean-of-means``, ``std-of-means``). The tokenizer is a real SentencePiece BPE model trained on built-in
caption-like English with Gemma's special ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3) but a tiny vocabulary.
``gemma_3_12B_it_fp4_mixed.safetensors`` is only a stand-in for ComfyUI's single-file Gemma (a few tensors with
ComfyUI-style names, no config) used to test the error raised when a user passes that file as the Gemma folder.

Full size (``scale="full"``): the same builder writes the tree at LTX-2.3's real sizes with random weights, for
benchmarking the real loading / training / sampling code on a GPU box that has no real weights: the official config
(``ltx23_config.json``), Gemma 3 12B at its real architecture (ltx-core's ``GEMMA3_CONFIG_FOR_LTX``; 5 shards + index;
the tokenizer stays the small trained one, whose ids are all below the vocabulary; image processor at 896 px), the
upscalers at ltx-core's ``LatentUpsampler`` default sizes and the distilled LoRA at rank 384 (~78 GB in all). Each
part is constructed directly on ``device`` (bf16 default dtype, so nothing is built on the CPU), given its
constructors' random init there, and streamed tensor by tensor into a :class:`StreamingSafetensorsWriter`
(byte-identical to ``safetensors.torch.save_file``), one part at a time. :func:`plan_tree` gives every file's exact
size from a meta-device plan without allocating. The miniature goes through the same code (same bytes as before).

ComfyUI (``scale="comfy"``): the miniature with the latent interfaces a real ComfyUI fixes (128 video latent channels,
8 x 16 audio latents, 128 audio statistics), everything else narrow, for running exported workflows there on a CPU.

Usage: ``python -m ltxic.models.miniature --out DIR [--scale comfy | --scale full --device cuda] [--plan]`` or :func:`build_miniature`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import gc
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ltxic.io.files import DiskFullError, write_json_atomic
from ltxic.models.safetensors_stream import StreamingSafetensorsWriter, TensorSpec, safetensors_size, spec_nbytes
from ltxic.models.miniature_gemma import gemma_config_for, gemma_part, gemma_shards, write_gemma_side_files
from ltxic.models.miniature_parts import Build, CHECKPOINT_REL, COMFY_GEMMA_REL, DISTILLED_LORA_REL, GEMMA_DIR_REL, SCALES, SPATIAL_UPSCALER_REL, Scale, ScaleSpec, TEMPORAL_UPSCALER_REL, comfy_gemma_part, connector_part, lora_part, module_part, scale_spec, statistics_part, storage_dtype, text_projection_part, transformer_part, upscaler_part, vocoder_part

@dataclass(frozen=True)
class MiniatureFiles:
    root: Path
    checkpoint: Path
    gemma_dir: Path
    comfy_gemma: Path
    spatial_upscaler: Path
    temporal_upscaler: Path
    distilled_lora: Path

    def all_files(self) -> list[Path]:
        out: list[Path] = []
        for f in fields(self):
            p = getattr(self, f.name)
            if f.name == "root":
                continue
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
        return out


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Job:
    label: str
    produce: Callable[[Build], Iterable[tuple[str, torch.Tensor]]]
    file: str | None = None  # relative to the root; None: `router` decides per key
    metadata: dict[str, str] | None = None
    router: Callable[[Mapping[str, TensorSpec]], dict[str, str]] | None = None
    reseed: int | None = None  # torch.manual_seed(seed + reseed) before the part is built


def _jobs(spec: ScaleSpec) -> list[_Job]:
    """Every part of every weight file, in build order."""
    cfg = spec.config
    p = functools.partial
    ck = p(_Job, file=CHECKPOINT_REL, metadata={"config": json.dumps(cfg)})
    dd = cfg["audio_vae"]["model"]["params"]["ddconfig"]
    jobs = [
        ck("transformer", p(transformer_part, cfg)),
        ck("video connector", p(connector_part, cfg, "video")),
        ck("audio connector", p(connector_part, cfg, "audio")),
        ck("text projection", p(text_projection_part, cfg, spec.gemma_hidden, spec.gemma_layers)),
        ck("video VAE encoder", p(module_part, cfg, "ltx_core.model.video_vae.VideoEncoderConfigurator", "vae.encoder.")),
        ck("video VAE decoder", p(module_part, cfg, "ltx_core.model.video_vae.VideoDecoderConfigurator", "vae.decoder.",
                                  fill=True)),
        ck("video VAE statistics", p(statistics_part, "vae.per_channel_statistics.", cfg["vae"]["latent_channels"])),
        ck("audio VAE encoder", p(module_part, cfg, "ltx_core.model.audio_vae.AudioEncoderConfigurator",
                                  "audio_vae.encoder.")),
        ck("audio VAE decoder", p(module_part, cfg, "ltx_core.model.audio_vae.AudioDecoderConfigurator",
                                  "audio_vae.decoder.")),
        # ltx-core sizes the audio statistics by `ch`
        ck("audio VAE statistics", p(statistics_part, "audio_vae.per_channel_statistics.", dd["ch"])),
        ck("vocoder", p(vocoder_part, cfg)),
    ]
    for label, rel, temporal in (("spatial upscaler", SPATIAL_UPSCALER_REL, False),
                                 ("temporal upscaler", TEMPORAL_UPSCALER_REL, True)):
        up_cfg = dict(spec.upscaler, spatial_upsample=not temporal, temporal_upsample=temporal)
        jobs.append(_Job(label, p(upscaler_part, up_cfg), rel, {"config": json.dumps(up_cfg)}))
    jobs.append(_Job("distilled LoRA", p(lora_part, cfg, spec.lora_rank), DISTILLED_LORA_REL))
    jobs.append(_Job("ComfyUI Gemma stand-in", comfy_gemma_part, COMFY_GEMMA_REL))
    jobs.append(_Job("Gemma 3", p(gemma_part, gemma_config_for(spec)), metadata={"format": "pt"},
                     router=p(gemma_shards, spec), reseed=1))
    return jobs


@dataclass
class FilePlan:
    """One weight file of the tree: its tensors (storage dtype, shape), metadata and parameters per part."""

    path: str  # relative to the tree's root
    metadata: dict[str, str] | None
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)  # part label -> number of values it stores in this file

    @property
    def nbytes(self) -> int:
        """The file's exact size (header included)."""
        return safetensors_size(self.tensors, self.metadata)

    @property
    def numel(self) -> int:
        return sum(math.prod(shape) for _, shape in self.tensors.values())


def _plan(spec: ScaleSpec, jobs: Sequence[_Job]) -> tuple[dict[str, FilePlan], dict[str, dict[str, str]]]:
    b = Build(torch.device("meta"), spec.build_dtype)
    files: dict[str, FilePlan] = {}
    routes: dict[str, dict[str, str]] = {}
    for job in jobs:
        items: dict[str, TensorSpec] = {}
        for name, t in job.produce(b):
            if name in items:
                raise ValueError(f"{job.label}: duplicate key {name}")
            items[name] = (storage_dtype(t.dtype), tuple(t.shape))
        route = job.router(items) if job.router is not None else dict.fromkeys(items, job.file)
        routes[job.label] = route  # type: ignore[assignment]
        for name, tspec in items.items():
            rel = route[name]
            fp = files.setdefault(rel, FilePlan(rel, job.metadata))
            if fp.metadata != job.metadata:
                raise ValueError(f"{rel}: parts disagree on the metadata")
            if name in fp.tensors:
                raise ValueError(f"{rel}: duplicate key {name}")
            fp.tensors[name] = tspec
            fp.parts[job.label] = fp.parts.get(job.label, 0) + math.prod(tspec[1])
    return files, routes


def plan_files(scale: str = "mini") -> dict[str, FilePlan]:
    """Every weight file of the tree at ``scale`` (relative path -> plan), computed on the meta device: nothing is
    allocated. The small side files (tokenizer, JSON configs, the Gemma index) are not included."""
    spec = scale_spec(scale)
    return _plan(spec, _jobs(spec))[0]


def plan_tree(scale: str = "mini") -> dict[str, int]:
    """Each weight file's exact size in bytes at ``scale`` (relative path -> bytes), from :func:`plan_files`."""
    return {rel: fp.nbytes for rel, fp in sorted(plan_files(scale).items())}


# --------------------------------------------------------------------------------------------- build


def _tree_files(root: Path) -> MiniatureFiles:
    return MiniatureFiles(
        root=root,
        checkpoint=root / CHECKPOINT_REL,
        gemma_dir=root / GEMMA_DIR_REL,
        comfy_gemma=root / COMFY_GEMMA_REL,
        spatial_upscaler=root / SPATIAL_UPSCALER_REL,
        temporal_upscaler=root / TEMPORAL_UPSCALER_REL,
        distilled_lora=root / DISTILLED_LORA_REL,
    )


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def disk_needs(root: Path, sizes: Mapping[str, int]) -> list[tuple[Path, int]]:
    """Bytes each disk must take for files ``sizes`` (relative path -> bytes) under ``root``, largest first.

    Folders of the tree may be links to other disks (a text encoder on a second drive, say): a file counts on the
    disk its folder resolves to (the nearest existing folder, for one not made yet).
    """
    by_disk: dict[int, tuple[Path, int]] = {}
    for rel, size in sizes.items():
        probe = (root / rel).parent
        while not probe.exists():
            probe = probe.parent
        probe = probe.resolve()
        dev = probe.stat().st_dev
        folder, need = by_disk.get(dev, (probe, 0))
        by_disk[dev] = (folder, need + size)
    return sorted(by_disk.values(), key=lambda item: -item[1])


def _check_disk(root: Path, plans: Mapping[str, FilePlan], routes: Mapping[str, Mapping[str, str]]) -> None:
    """Fail before writing when a disk cannot hold its part of the tree (old files stay until their new copy is
    complete; the largest file being replaced counts on the disk that takes the most)."""
    old = {rel: (root / rel).stat().st_size if (root / rel).is_file() else 0 for rel in plans}
    transient = max((sum(old[r] for r in set(route.values())) for route in routes.values()), default=0)
    for i, (folder, need) in enumerate(disk_needs(root, {rel: fp.nbytes - old[rel] for rel, fp in plans.items()})):
        need += (transient if i == 0 else 0) + (1 << 30)
        free = shutil.disk_usage(folder).free
        if free < need:
            raise DiskFullError(errno.ENOSPC, f"{folder}: the tree needs about {need / 1e9:.1f} GB free on that disk, "
                                              f"{free / 1e9:.1f} GB are. Free some space or write it elsewhere.")


def build_miniature(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    scale: Scale = "mini",
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> MiniatureFiles:
    """Write the ComfyUI tree under ``root`` (each file atomically) and return its paths.

    ``scale="mini"``: the miniature (~10 MB, CPU, seconds). ``scale="comfy"``: the miniature with ComfyUI's fixed
    latent interfaces (128 video latent channels, 8 x 16 audio latents), which ComfyUI's LTX-2 loaders accept
    (the Gemma folder is the miniature's). ``scale="full"``: LTX-2.3's real sizes with random
    weights (~78 GB; use ``device="cuda"``): each part is constructed on ``device`` in bf16, randomly initialised
    there and streamed to disk before the next is built, so peak memory is about one part (the 19B transformer,
    ~38 GB on the GPU) and CPU memory stays ~1-3 GB. ``progress`` (default: on at full scale) shows a tqdm bar.
    """
    spec = scale_spec(scale)
    dev = torch.device(device)
    if dev.type == "meta":
        raise ValueError("device='meta' allocates nothing: use plan_files() / plan_tree() for the plan")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    root = Path(root)
    files = _tree_files(root)
    show = (scale == "full") if progress is None else progress

    jobs = _jobs(spec)
    plans, routes = _plan(spec, jobs)
    if scale == "full":
        _check_disk(root, plans, routes)
    write_gemma_side_files(files.gemma_dir, spec)
    planned_shards = {root / rel for rel in plans if rel.startswith(GEMMA_DIR_REL + "/")}
    for stale in files.gemma_dir.glob("model-*.safetensors"):  # a tree of the other scale: loaders read every shard
        if stale not in planned_shards:
            stale.unlink()

    from ltxic.io.progress import progress as tqdm

    total = sum(fp.nbytes for fp in plans.values())
    writers: dict[str, StreamingSafetensorsWriter] = {}
    rng_devices = [dev.index] if dev.type == "cuda" else []
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not show, desc="weights") as bar, \
            torch.random.fork_rng(devices=rng_devices):
        try:
            torch.manual_seed(seed)
            b = Build(dev, spec.build_dtype, torch.Generator(device=dev).manual_seed(seed))
            for job in jobs:
                if job.reseed is not None:
                    torch.manual_seed(seed + job.reseed)
                bar.set_description(job.label)
                route = routes[job.label]
                for name, tensor in job.produce(b):
                    rel = route[name]
                    writer = writers.get(rel)
                    if writer is None:
                        fp = plans[rel]
                        writer = StreamingSafetensorsWriter(root / rel, fp.tensors, fp.metadata, on_write=bar.update)
                        writers[rel] = writer.__enter__()
                    writer.write(name, tensor)
                    del tensor
                for rel in [r for r, w in writers.items() if w.complete]:
                    writers.pop(rel).__exit__(None, None, None)
                _release(dev)
            if writers:
                raise RuntimeError(f"files left incomplete: {sorted(writers)}")
        except BaseException:
            info = sys.exc_info()
            for writer in writers.values():
                with contextlib.suppress(BaseException):
                    writer.__exit__(*info)
            raise

    weight_map = {k: Path(rel).name for rel, fp in plans.items() if rel.startswith(GEMMA_DIR_REL + "/") for k in fp.tensors}
    shard_bytes = sum(spec_nbytes(s) for rel, fp in plans.items() if rel.startswith(GEMMA_DIR_REL + "/")
                      for s in fp.tensors.values())
    write_json_atomic(files.gemma_dir / "model.safetensors.index.json",
                      {"metadata": {"total_size": shard_bytes}, "weight_map": dict(sorted(weight_map.items()))})
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxic.models.miniature", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder to hold the ComfyUI-style models/ tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=SCALES, default="mini",
                        help="mini: tiny sizes (~10 MB, CPU); comfy: mini with ComfyUI's latent sizes; full: LTX-2.3's real sizes, random weights (~78 GB)")
    parser.add_argument("--device", default=None,
                        help="where parts are built and filled (default: cuda for --scale full when present, else cpu)")
    parser.add_argument("--plan", action="store_true", help="print the planned files and sizes; write nothing")
    args = parser.parse_args(argv)
    if args.out is None and not args.plan:
        parser.error("--out is required (unless --plan)")
    device = args.device or ("cuda" if args.scale == "full" and torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    planned = plan_tree(args.scale)
    print(f"plan ({args.scale}, {time.perf_counter() - start:.1f} s):")
    for rel, size in planned.items():
        print(f"{size / 1e9:12.6f} GB  {rel}")
    print(f"{sum(planned.values()) / 1e9:12.6f} GB  weights in all", flush=True)
    if args.plan:
        return 0
    start = time.perf_counter()
    files = build_miniature(args.out, seed=args.seed, scale=args.scale, device=device, progress=True)
    seconds = time.perf_counter() - start
    total = 0
    for path in files.all_files():
        size = path.stat().st_size
        total += size
        print(f"{size / 1e6:12.3f} MB  {path.relative_to(files.root)}")
    peak = ""
    if torch.device(device).type == "cuda":
        peak = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    print(f"{total:d} bytes ({total / 1e9:.3f} GB) total, built on {device} in {seconds:.1f} s "
          f"({total / 1e9 / max(seconds, 1e-9):.2f} GB/s){peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
