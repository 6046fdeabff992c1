"""ltxic's own training step at LTX-2.3 22B (random weights) against a plain loop, measured in one run.

The workload: ``audio_ref_only_ic`` at 768x448x49 (2352 target video tokens) with the reference image at the
config's downscale factor (1: 336 reference tokens; 2: 84), 2 s of target audio (52 tokens) and 10 s of
reference voice (251 tokens), a Gemma-length text context (1024 tokens per stream), rank 128 on the shipped
``ltx23_h100`` targets, batch 1. The batch is cached latents of those shapes (random values: the step's time does
not depend on them).

Each variant runs in its own process, so its peak memory is its own:

* ``matmul``: the card's bf16 matmul rate (8192^3 products timed with CUDA events), the MFU denominator.
* ``flops``: the FLOPs of one training step of the workload, counted by ``torch.utils.flop_counter`` (every
  matmul and attention call of the forward and backward, no recompute): the MFU numerator.
* ``plain``: the baseline. ltx-core's ``LTXModel`` with bf16 LoRA adapters written in ten lines, ``torch.autocast``,
  ltx-core's gradient checkpointing switch and AdamW, on the same inputs (``plain_full``: without checkpointing).
* the trainer's variants: ``ltxic.training.loop.run_training``, the loop ``ltxic train`` runs, with the shipped config
  (``ltxic/configs/ltx23_h100.yaml``) changed only as the variant says (``VARIANTS``), its LoRA from
  ``ltxic.training.trainer.prepare_lora``. Step times and peaks come from its own metrics.jsonl and stages.json.

    python benchmarks/train_speed.py --out OUT --variants matmul,flops,plain,fast,lean [--gpus 0,1]
    torchrun --nproc-per-node 2 benchmarks/train_speed.py --worker fast --out OUT --distributed ddp

``--scale mini --device cpu`` runs the same code on the miniature config (the CPU test in tests/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GIB = 2**30

# The trainer's variants: overrides of the shipped config. "cap_gib" limits the process's GPU memory
# (torch.cuda.set_per_process_memory_fraction): 78 GiB is what an H100 80 GB leaves a process.
VARIANTS: dict[str, dict[str, Any]] = {
    # every block recomputed, eager: the shipped settings before this benchmark
    "eager_all": {"optimization": {"gradient_checkpointing": True, "compile": False}},
    "eager_auto": {"optimization": {"gradient_checkpointing": "auto", "compile": False}, "cap_gib": 78},
    "compiled_all": {"optimization": {"gradient_checkpointing": True, "compile": True}},
    # the fast setting, as shipped: compiled blocks (activation_memory_budget 0.5), as few whole blocks recomputed
    # as fit an 80 GB card
    "fast": {"optimization": {"gradient_checkpointing": "auto", "compile": True}, "cap_gib": 78},
    "fast_ref2": {"optimization": {"gradient_checkpointing": "auto", "compile": True}, "cap_gib": 78,
                  "training_strategy": {"reference_downscale_factor": 2}},
    "fast_uncapped": {"optimization": {"gradient_checkpointing": False, "compile": True}},
    "eager_none": {"optimization": {"gradient_checkpointing": False, "compile": False}},
    # the memory-lean setting of the same config: fp8 base weights, every block recomputed, compiled
    "lean": {"model": {"fp8": True}, "optimization": {"gradient_checkpointing": True, "compile": True}},
    # fp8 base weights (upcast per matmul): half the weight memory, so fewer blocks recompute under the cap
    "fast_fp8": {"model": {"fp8": True}, "optimization": {"gradient_checkpointing": "auto", "compile": True},
                 "cap_gib": 78},
    "fast_uncapped_fp8": {"model": {"fp8": True}, "optimization": {"gradient_checkpointing": False, "compile": True}},
    # the fast setting with PyTorch's flash SDPA instead of cuDNN's (less host work per attention call)
    "fast_flash": {"optimization": {"gradient_checkpointing": "auto", "compile": True}, "cap_gib": 78,
                   "sdpa": "flash"},
    # selective recompute inside compiled blocks: they keep that share of their activations, so fewer whole blocks
    # recompute under the cap (0.5 is shipped; 1.0 is the compiler's own choice, the default before call 10)
    "fast_budget100": {"optimization": {"gradient_checkpointing": "auto", "compile": True,
                                        "activation_memory_budget": 1.0}, "cap_gib": 78},
    "fast_budget70": {"optimization": {"gradient_checkpointing": "auto", "compile": True,
                                       "activation_memory_budget": 0.7}, "cap_gib": 78},
    "fast_budget50": {"optimization": {"gradient_checkpointing": "auto", "compile": True,
                                       "activation_memory_budget": 0.5}, "cap_gib": 78},
    "fast_budget20": {"optimization": {"gradient_checkpointing": "auto", "compile": True,
                                       "activation_memory_budget": 0.2}, "cap_gib": 78},
    # the same without a cap or whole-block recompute: how much memory each budget needs, and its step time
    "fast_uncapped_budget50": {"optimization": {"gradient_checkpointing": False, "compile": True,
                                                "activation_memory_budget": 0.5}},
    "fast_uncapped_budget20": {"optimization": {"gradient_checkpointing": False, "compile": True,
                                                "activation_memory_budget": 0.2}},
    # the 24 GB config (its own file) under a 24 GiB cap
    "24gb": {"config": "ltx23_24gb", "cap_gib": 24},
}
PLAIN = ("plain", "plain_full")
# 200 steps on one fixed cached batch: the shipped fast path (compiled, recompute as an 80 GB card needs) against the
# reference (eager, nothing recomputed); float32 adapters in both
QUALITY = {
    "quality_fast": {"optimization": {"gradient_checkpointing": "auto", "compile": True}, "cap_gib": 78},
    "quality_ref": {"optimization": {"gradient_checkpointing": False, "compile": False}},
}
WORKLOAD = {"width": 768, "height": 448, "frames": 49, "fps": 24.0, "ref_voice_seconds": 10.0, "context": 1024}
QUALITY_WORKLOAD = {**WORKLOAD, "width": 384, "height": 224, "frames": 25}


# --------------------------------------------------------------------------------------------- workload


def load_cfg(name: str, overrides: dict[str, Any], out: Path, steps: int, cpu: bool = False) -> Any:
    import yaml

    from ltxic.training.config import TrainingConfig

    raw = yaml.safe_load((REPO / "ltxic" / "configs" / f"{name}.yaml").read_text())
    for section, values in overrides.items():
        if isinstance(values, dict) and section in raw:
            raw[section].update(values)
    raw["optimization"].update(steps=steps, warmup_steps=min(raw["optimization"]["warmup_steps"], steps // 4))
    raw["validation"]["interval"] = 0
    raw["output"].update(dir=str(out), checkpoint_interval=steps, keep_last_n=1)
    raw["model"].update(comfyui_root=None, checkpoint=None, text_encoder=None)
    if cpu:  # bf16 training needs CUDA's autocast; the CPU check runs the same code in float32
        raw["model"]["dtype"] = "float32"
    raw["dataset"]["dataset_file"] = str(out / "unused.json")
    return TrainingConfig.model_validate(raw)


def cached_samples(cfg: Any, workload: dict[str, Any], scale: str, count: int = 4) -> list[Any]:
    """``count`` cached samples of the workload's shapes, as ``ltxic.training.cache`` stores them (random values)."""
    import torch

    from ltxic.models.latents import AudioGeometry, VideoGeometry
    from ltxic.models.miniature_parts import scale_spec
    from ltxic.models.strategies import EncodedSample

    t = scale_spec(scale).config["transformer"]
    vg, ag = VideoGeometry(), AudioGeometry()
    frames, h, w = vg.latent_size(workload["frames"], workload["height"], workload["width"])
    f = cfg.training_strategy.reference_downscale_factor
    rh, rw = max(1, round(h / f)), max(1, round(w / f))

    def audio_frames(seconds: float) -> int:  # ltxic.models.ltx23.AudioCodec's latent length for a clip of `seconds`
        samples = int(seconds * ag.sample_rate)
        return (samples // ag.hop_length + 1 + 3) // ag.latent_downsample

    audio_in = t.get("audio_in_channels", 128)  # the official config leaves it to ltx-core's default, 128
    mel = 16 if audio_in % 16 == 0 else 1
    channels = audio_in // mel
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        out.append(EncodedSample(
            video_latent=torch.randn(t["in_channels"], frames, h, w, generator=gen),
            video_context=torch.randn(workload["context"], t["cross_attention_dim"], generator=gen),
            audio_context=torch.randn(workload["context"], t["audio_cross_attention_dim"], generator=gen),
            context_mask=torch.ones(workload["context"], dtype=torch.int64),  # LTX-2.3's connector pads with registers
            audio_latent=torch.randn(channels, audio_frames(workload["frames"] / workload["fps"]), mel, generator=gen),
            ref_video_latent=torch.randn(t["in_channels"], 1, rh, rw, generator=gen),
            ref_audio_latent=torch.randn(channels, audio_frames(workload["ref_voice_seconds"]), mel, generator=gen),
            fps=workload["fps"],
        ))
    return out


def token_counts(samples: list[Any]) -> dict[str, int]:
    s = samples[0]
    video = s.video_latent[0].numel()
    ref = s.ref_video_latent[0].numel()
    audio, ref_audio = s.audio_latent.shape[1], s.ref_audio_latent.shape[1]
    return {"video_target_tokens": video, "video_reference_tokens": ref, "audio_target_tokens": audio,
            "audio_reference_tokens": ref_audio, "context_tokens": s.video_context.shape[0],
            "tokens": video + ref + audio + ref_audio}


def strategy_for(cfg: Any) -> Any:
    from ltxic.models.latents import AudioGeometry, VideoGeometry
    from ltxic.models.strategies import get_strategy

    return get_strategy(cfg.training_strategy.name, cfg.training_strategy.reference_downscale_factor,
                        first_frame_conditioning_p=cfg.training_strategy.first_frame_conditioning_p,
                        video_geometry=VideoGeometry(), audio_geometry=AudioGeometry())


def base_model(cfg: Any, scale: str, device: Any) -> Any:
    import torch

    from ltxic.models.miniature_parts import random_transformer

    dtype = torch.bfloat16 if cfg.model.dtype == "bfloat16" else torch.float32
    return random_transformer(scale, device=device, dtype=dtype, fp8=cfg.model.fp8, seed=0)


def cap_memory(device: Any, cap_gib: float | None) -> None:
    import torch

    if cap_gib and device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * GIB / total), index)


# --------------------------------------------------------------------------------------------- variants


def run_trainer(name: str, spec: dict[str, Any], args: argparse.Namespace, device: Any, workload: dict[str, Any],
                on_model: Any = None) -> dict:
    """One of the trainer's variants through ``run_training`` (what ``ltxic train`` runs after caching).

    ``on_model(model)``, if given, sees the model just before training (the profiler hooks its forward there).
    """
    import torch

    from ltxic.training.distributed import setup
    from ltxic.models.lora import save_lora
    from ltxic.models.strategies import collate
    from ltxic.training.trainer import options_from_config, prepare_lora
    from ltxic.training.loop import read_metrics, run_training

    # checkpoints (a rank-128 state is ~15 GB) go to memory when it has room for them; every rank of a torchrun
    # launch uses the same folder (rank 0 writes in it)
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and shutil.disk_usage(shm).free > 40 * GIB
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", str(os.getpid()))
    scratch = (shm if roomy else Path(tempfile.gettempdir())) / f"train_speed_{name}_{run_id}"
    scratch.mkdir(parents=True, exist_ok=True)
    overrides = {k: v for k, v in spec.items() if k not in ("config", "cap_gib", "sdpa")}
    if spec.get("sdpa") == "flash" and device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
    if args.distributed:
        overrides.setdefault("optimization", {})["distributed"] = args.distributed
    cfg = load_cfg(spec.get("config", "ltx23_h100"), overrides, scratch, args.steps, cpu=device.type == "cpu")
    dist = setup(cfg.optimization.distributed, device)
    try:
        samples = cached_samples(cfg, workload, args.scale)
        build = time.perf_counter()
        model = base_model(cfg, args.scale, device)
        lora_cfg = prepare_lora(model, cfg, device)
        build = time.perf_counter() - build
        # the cap binds the training (the loader streams a checkpoint in; the random build makes bf16 weights first)
        cap_memory(device, spec.get("cap_gib"))
        if on_model is not None:
            on_model(model)
        options = options_from_config(cfg)
        options.progress = False
        started = time.perf_counter()
        file_dtype = torch.bfloat16 if cfg.model.dtype == "bfloat16" else None

        def save(model: Any, path: Path, metadata: dict[str, str]) -> None:  # as ltxic.training.trainer.train saves
            save_lora(model, path, config=lora_cfg, metadata=metadata, dtype=file_dtype)

        result = run_training(model, samples, strategy_for(cfg), options, save_lora=save, collate=collate,
                              device=device, distributed=dist)
        wall = time.perf_counter() - started
        peaks = dist.gather_objects(round(torch.cuda.max_memory_allocated(device) / GIB, 2)
                                    if device.type == "cuda" else 0.0)
        rows = read_metrics(result.metrics_path) if dist.is_main() else []
        recompute = getattr(model, "ltxic_recompute_blocks", None)
        lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        del model
        out = {"config": spec.get("config", "ltx23_h100"), "overrides": overrides, "cap_gib": spec.get("cap_gib"),
               "sdpa": spec.get("sdpa", "default"),
               "recompute_blocks": recompute, "lora_rank": lora_cfg.rank, "lora_params_m": round(lora_params / 1e6, 1),
               "world_size": dist.world_size, "mode": dist.mode if dist.enabled else "single",
               "build_s": round(build, 1), "wall_s": round(wall, 1),
               "losses": [r["loss"] for r in rows], **step_stats([r["seconds"] for r in rows] or [0.0], args.warmup),
               "peak_gib": max((r.get("peak_gib", 0.0) for r in rows), default=None), "peak_gib_per_rank": peaks}
        return out
    finally:
        main = dist.is_main()
        dist.close()
        if main:
            shutil.rmtree(scratch, ignore_errors=True)


def run_plain(name: str, args: argparse.Namespace, device: Any, workload: dict[str, Any]) -> dict:
    """The baseline: the plainest loop a user would write around ltx-core, on the same inputs."""
    import torch
    from torch import nn

    from ltxic.models.strategies import collate

    cfg = load_cfg("ltx23_h100", {}, Path(tempfile.gettempdir()), args.steps, cpu=device.type == "cpu")
    samples = cached_samples(cfg, workload, args.scale)
    model = base_model(cfg, args.scale, device)
    rank, targets = cfg.lora.rank, tuple("." + t for t in cfg.lora.target_modules)

    adapter_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    class LoRA(nn.Module):  # the ten lines: bf16 adapters, B zero
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.down = nn.Linear(base.in_features, rank, bias=False, device=device, dtype=adapter_dtype)
            self.up = nn.Linear(rank, base.out_features, bias=False, device=device, dtype=adapter_dtype)
            nn.init.zeros_(self.up.weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + self.up(self.down(x))

    model.requires_grad_(False)
    for n, m in list(model.named_modules()):
        if type(m) is nn.Linear and n.endswith(targets):
            parent, _, child = n.rpartition(".")
            setattr(model.get_submodule(parent), child, LoRA(m))
    model.set_gradient_checkpointing(name == "plain")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    strategy = strategy_for(cfg)
    batch = collate(samples[:1]).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = strategy.loss(model, batch, gen)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - t0)
    out = {"gradient_checkpointing": name == "plain", "lora_params_m": round(sum(p.numel() for p in params) / 1e6, 1),
           **step_stats(times, args.warmup)}
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
    return out


def run_flops(args: argparse.Namespace, device: Any, workload: dict[str, Any]) -> dict:
    """FLOPs of one step (forward + backward of the base and the adapters, no recompute), by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ltxic.models.strategies import collate

    cfg = load_cfg("ltx23_h100", {}, Path(tempfile.gettempdir()), 1, cpu=device.type == "cpu")
    samples = cached_samples(cfg, workload, args.scale)
    model = base_model(cfg, args.scale, device)
    from ltxic.training.trainer import prepare_lora

    prepare_lora(model, cfg, device)
    model.train()
    batch = collate(samples[:1]).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss, _ = strategy_for(cfg).loss(model, batch, gen)
        loss.backward()
    by_op = {str(k): v for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return {"step_flops": counter.get_total_flops(), "by_op": by_op, **token_counts(samples),
            "how": "torch.utils.flop_counter.FlopCounterMode over one forward + backward of the trainer's model "
                   "(base + LoRA adapters, no recompute): 2*M*N*K per matmul, attention by its matmuls"}


def run_matmul(device: Any) -> dict:
    import torch

    if device.type != "cuda":
        return {"skipped": "no GPU"}
    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize(device)
        times.append(start.elapsed_time(end) / 1e3)
    return {"tflops": round(2 * n**3 / statistics.median(times) / 1e12, 1), "shape": [n, n, n]}


def step_stats(times: list[float], warmup: int) -> dict[str, Any]:
    kept = sorted(times[warmup:]) or sorted(times)
    q = lambda p: kept[min(len(kept) - 1, int(p * len(kept)))]  # noqa: E731
    return {"step_times_s": [round(t, 4) for t in times], "warmup_steps_skipped": min(warmup, len(times)),
            "step_median_s": round(statistics.median(kept), 4), "step_p10_s": round(q(0.1), 4),
            "step_p90_s": round(q(0.9), 4), "step_min_s": round(kept[0], 4), "step_max_s": round(kept[-1], 4)}


def kernel_kind(name: str) -> str:
    """A GPU kernel's kind from its name. Attention and the optimizer come first: cuDNN's attention kernels are named
    "...sdpa...wgmma..." and the fused AdamW kernel "multi_tensor_apply_kernel<...Adam...>", both with an "mm"."""
    key = name.lower()
    if any(s in key for s in ("flash", "fmha", "attention", "sdpa", "cudnn")):
        return "attention"
    if "adam" in key:
        return "optimizer"
    if any(s in key for s in ("gemm", "cutlass", "nvjet", "mm", "matmul")):
        return "matmul"
    return "elementwise and other"


def profile_variant(name: str, spec: dict[str, Any], args: argparse.Namespace, device: Any, out: Path) -> dict:
    """Where a variant's time goes: the PyTorch profiler over steady steps, kernels grouped by kind.

    The profiler records only the steps after ``--warmup`` (each model forward advances its schedule), so the first
    step's compilation and the final checkpoint's copies stay out of the totals.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, schedule

    active = max(1, args.steps - args.warmup - 1)  # the last step is followed by the checkpoint
    forwards = [0]

    def hook(model: Any) -> None:
        def advance(*_: Any) -> None:
            forwards[0] += 1
            prof.step()
        model.register_forward_pre_hook(advance)

    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else []),
                 schedule=schedule(wait=args.warmup + 1, warmup=0, active=active, repeat=1)) as prof:
        started = time.perf_counter()
        result = run_trainer(name, spec, args, device, WORKLOAD, on_model=hook)
        wall = time.perf_counter() - started
    events = prof.key_averages()
    table = events.table(sort_by="cuda_time_total", row_limit=30)
    (out / f"profile_{name}.txt").write_text(table)
    kinds: dict[str, float] = {}
    kernels: list[tuple[float, str, str]] = []
    for e in events:
        # kernels only, as the table's "Self CUDA time total": an operator's row repeats its kernels' time, and the
        # ProfilerStep annotation spans the whole step
        if e.device_type == DeviceType.CPU or e.is_user_annotation:
            continue
        t = e.self_device_time_total / 1e6
        if t <= 0:
            continue
        kind = kernel_kind(e.key)
        kinds[kind] = kinds.get(kind, 0.0) + t
        kernels.append((round(t, 4), kind, e.key))
    # the profiled steps' own times (an out-of-memory retry is one more forward: then the window shifts by one)
    times = result.get("step_times_s", [])
    stepping = sum(times[args.warmup:args.warmup + active]) or wall
    return {**result, "profile_wall_s": round(wall, 2), "profiled_steps": active, "forwards": forwards[0],
            "device_seconds_by_kind": {k: round(v, 2) for k, v in kinds.items()},
            "device_busy_fraction_of_steps": round(sum(kinds.values()) / stepping, 3),
            "kernels": sorted(kernels, reverse=True),
            "profile_table": f"profile_{name}.txt"}


def compare_quality(out: Path) -> dict[str, Any] | None:
    """Do ``quality_fast`` and ``quality_ref`` learn the same? Their loss curves against the reference's own noise.

    Both runs draw the same timesteps and noise (same seed, same batch), so their losses move together step by step.
    The step-to-step noise is the spread of the reference's successive differences; the curves agree when the typical
    gap between them (median absolute difference) is below that noise and the last quarter's mean losses differ by
    less than twice its standard error.
    """
    paths = [out / f"{name}.json" for name in ("quality_fast", "quality_ref")]
    if not all(p.exists() for p in paths):
        return None
    fast, ref = (json.loads(p.read_text()).get("losses") or [] for p in paths)
    n = min(len(fast), len(ref))
    if n < 8:
        return None
    fast, ref = fast[:n], ref[:n]
    gaps = [abs(f - r) for f, r in zip(fast, ref)]
    noise = statistics.pstdev([b - a for a, b in zip(ref, ref[1:])])
    tail = slice(n - n // 4, n)
    tail_diff = statistics.fmean(fast[tail]) - statistics.fmean(ref[tail])
    tail_error = statistics.pstdev(ref[tail]) / len(ref[tail]) ** 0.5
    result = {"steps": n, "step_to_step_noise": round(noise, 5), "median_abs_gap": round(statistics.median(gaps), 5),
              "max_abs_gap": round(max(gaps), 5), "last_quarter_mean_fast": round(statistics.fmean(fast[tail]), 5),
              "last_quarter_mean_ref": round(statistics.fmean(ref[tail]), 5),
              "last_quarter_difference": round(tail_diff, 5), "last_quarter_standard_error": round(tail_error, 5),
              "agree": statistics.median(gaps) < noise and abs(tail_diff) < 2 * tail_error,
              "how": compare_quality.__doc__.split("\n\n")[1].replace("\n    ", " ").strip()}
    (out / "quality.json").write_text(json.dumps(result, indent=1))
    return result


def summarize(out: Path, rates: Path | None = None) -> list[dict[str, Any]]:
    """One call's table: each timed variant's median, spread, peak, tokens/s, MFU and its ratio to the plain loop of
    the same call. Writes ``summary.md`` beside the results.

    Tokens and FLOPs come from ``flops.json`` and the matmul rate from ``matmul.json``, in ``out`` or else in
    ``rates`` (a folder of an earlier call on the same kind of card). They are of the default workload, so MFU is left
    out for variants that change its shape or the adapter (another config, reference factor or LoRA).
    """
    def read(name: str) -> dict[str, Any] | None:
        for folder in (out, rates):
            if folder is not None and (folder / name).exists():
                return json.loads((folder / name).read_text())
        return None

    flops, matmul = read("flops.json"), read("matmul.json")
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    results = [r for r in results if r.get("step_median_s") and not r["variant"].startswith(("profile_", "quality_"))]
    if not results:
        return []
    plain = next((r["step_median_s"] for r in results if r["variant"] == "plain"), None)
    rows = []
    for r in results:
        overrides = r.get("overrides", {})
        same_work = r.get("config", "ltx23_h100") == "ltx23_h100" and not {"training_strategy", "lora"} & set(overrides)
        median = r["step_median_s"]
        rows.append({
            "variant": r["variant"],
            "recompute_blocks": r.get("recompute_blocks", "all" if r.get("gradient_checkpointing") else None),
            "step_median_s": median, "step_p10_s": r["step_p10_s"], "step_p90_s": r["step_p90_s"],
            "peak_gib": r.get("peak_gib"),
            "tokens_per_s": round(flops["tokens"] / median) if flops and same_work else None,
            "mfu": round(flops["step_flops"] / median / (matmul["tflops"] * 1e12), 3)
            if flops and matmul and matmul.get("tflops") and same_work else None,
            "plain_over_this": round(plain / median, 2) if plain else None})
    lines = ["| variant | whole blocks recomputed | median step (p10-p90) | peak GiB | tokens/s | MFU | plain / this |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def show(value: Any, form: str = "{}") -> str:
        return "n/a" if value is None else form.format(value)

    for row in rows:
        lines.append(f"| {row['variant']} | {show(row['recompute_blocks'])} | {row['step_median_s']:.2f} s "
                     f"({row['step_p10_s']:.2f}-{row['step_p90_s']:.2f}) | {show(row['peak_gib'], '{:.1f}')} | "
                     f"{show(row['tokens_per_s'])} | {show(row['mfu'], '{:.1%}')} | "
                     f"{show(row['plain_over_this'], '{}x')} |")
    notes = [f"FLOPs per step {flops['step_flops'] / 1e12:.1f} T for {flops['tokens']} tokens" if flops else
             "no flops.json: tokens/s and MFU left out",
             f"matmul rate {matmul['tflops']} TFLOP/s" if matmul and matmul.get("tflops") else "no matmul rate: no MFU"]
    (out / "summary.md").write_text("\n".join(lines) + "\n\n" + "; ".join(notes) + ".\n")
    return rows


# --------------------------------------------------------------------------------------------- driver


def worker(args: argparse.Namespace) -> int:
    import torch

    from ltxic.models.devices import device_for

    device = device_for() if args.device == "auto" else torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.worker
    workload = QUALITY_WORKLOAD if name in QUALITY else WORKLOAD
    started = time.perf_counter()
    try:
        if name == "matmul":
            result = run_matmul(device)
        elif name == "flops":
            result = run_flops(args, device, workload)
        elif name in PLAIN:
            result = run_plain(name, args, device, workload)
        elif name.startswith("profile_"):
            result = profile_variant(name[len("profile_"):], {**VARIANTS, **QUALITY}[name[len("profile_"):]], args,
                                     device, out)
        else:
            result = run_trainer(name, {**VARIANTS, **QUALITY}[name], args, device, workload)
        result["status"] = "ok"
    except torch.OutOfMemoryError as err:
        result = {"status": "out of memory", "error": str(err)[:400]}
    except Exception as err:  # noqa: BLE001 - one variant's failure is a result, not the end of the run
        result = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]}
    result.update(variant=name, seconds=round(time.perf_counter() - started, 1), steps=args.steps,
                  workload=workload, device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    if int(os.environ.get("RANK", "0")) == 0:
        suffix = f"_{args.distributed}{os.environ.get('WORLD_SIZE', '')}" if args.distributed else ""
        (out / f"{name}{suffix}.json").write_text(json.dumps(result, indent=1))
        long = ("step_times_s", "losses", "by_op", "workload", "kernels")
        print(json.dumps({k: v for k, v in result.items() if k not in long}), flush=True)
    return 0 if result["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default="matmul,flops,plain,eager_all,fast,lean",
                        help="comma-separated; 'a,b|c,d' gives each of --gpus its own queue")
    parser.add_argument("--worker", help="run one variant in this process")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--quality-steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the statistics")
    parser.add_argument("--scale", default="full", choices=("full", "mini"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--distributed", choices=("ddp", "fsdp"), default=None)
    parser.add_argument("--gpus", default="0", help="GPUs to spread the variants over, one process each")
    parser.add_argument("--rates", type=Path, help="folder with flops.json and matmul.json from an earlier call (for MFU)")
    parser.add_argument("--summarize", action="store_true", help="only write --out's summary.md from its results")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.summarize:
        print((Path(args.out) / "summary.md").read_text() if summarize(Path(args.out), args.rates)
              else "no timed results in " + args.out)
        return 0
    # each GPU runs its share of the variants one after another, the GPUs in parallel
    import threading

    gpus = args.gpus.split(",")
    if "|" in args.variants:  # one queue per GPU, as given
        queues = [q.split(",") for q in args.variants.split("|")]
        if len(queues) != len(gpus):
            parser.error(f"--variants has {len(queues)} '|'-separated queues for {len(gpus)} --gpus")
    else:
        queues = [[] for _ in gpus]
        for i, name in enumerate(args.variants.split(",")):
            queues[i % len(gpus)].append(name)
    codes: list[int] = []

    def run_queue(gpu: str, queue: list[str]) -> None:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu} if args.device in ("auto", "cuda") else dict(os.environ)
        for v in queue:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", v, "--out", args.out,
                   "--steps", str(args.quality_steps if v in QUALITY else 8 if v.startswith("profile_") else args.steps),
                   "--warmup", str(args.warmup),
                   "--scale", args.scale, "--device", args.device]
            codes.append(subprocess.run(cmd, env=env, check=False).returncode)

    threads = [threading.Thread(target=run_queue, args=(g, q)) for g, q in zip(gpus, queues)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summarize(Path(args.out), args.rates)
    quality = compare_quality(Path(args.out))
    if quality is not None:
        print(json.dumps({"quality": quality}), flush=True)
    return max(codes, default=0)

if __name__ == "__main__":
    sys.exit(main())
