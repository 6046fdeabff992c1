"""The IC-LoRA training loop: a plain loop in the style of diffusers' training scripts.

:func:`run_training` takes built pieces (a model whose trainable parameters are the LoRA's, the cached samples, a
strategy with ``loss(model, batch, generator) -> (loss, logs)``, a function that writes the LoRA file) and does AdamW,
warm-up + schedule, clipping, accumulation, bf16 autocast on CUDA, checkpoints, resume, validation and the metrics
log. :func:`ltxic.training.trainer.train` builds those pieces from a config and calls it.

Exact resume: the data order and the noise of step ``s`` depend only on ``(seed, s)`` (see :class:`DataOrder`
and :func:`step_generator`), and a checkpoint holds the trainable weights in full precision, the optimizer and
scheduler states and all RNG states, so a run killed at any point and resumed from its last checkpoint
produces the same loss curve as an uninterrupted one.

Checkpoints (atomic, with a manifest; layout in :mod:`ltxic.training.checkpoints`) go to ``output_dir/checkpoints/``.
Beside them: ``output_dir/metrics.jsonl`` (one line per step: loss, video_loss, audio_loss, lr, grad_norm, seconds;
see :func:`plot_metrics`) and ``output_dir/validation/step_000500/`` (sampled latents and decoded mp4s).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ltxic.training.checkpoints import (
    CHECKPOINTS,
    LORA_FILE,
    STATE_FILE,
    SaveLoraFn,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ltxic.io.errors import InputError
from ltxic.io.files import atomic_path
from ltxic.models.offload import stream_block_weights
from ltxic.io.profiling import StepTimer
from ltxic.training.speed import RecomputePlan, compile_blocks, free_after_oom

METRICS_FILE = "metrics.jsonl"

ValidateFn = Callable[[torch.nn.Module, int, Path], Any]


class TrainingError(InputError, RuntimeError):
    """Training cannot go on; the message says which setting to change."""


class TrainingOOMError(TrainingError):
    """The accelerator ran out of memory; the message lists the settings to lower."""


@dataclass
class TrainOptions:
    """What the loop needs to know; :func:`options_from_config` fills it from a YAML config."""

    output_dir: Path
    steps: int = 6000
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    scheduler: str = "constant"  # constant | linear | cosine (after warm-up)
    max_grad_norm: float = 1.0  # 0 disables clipping (the norm is still logged)
    grad_accumulation: int = 1
    batch_size: int = 1
    seed: int = 42
    checkpoint_interval: int = 500
    keep_last_n: int = 3  # 0 keeps every checkpoint
    validation_interval: int = 0  # 0 disables validation
    mixed_precision: str = "bf16"  # bf16 | no; bf16 autocast applies on CUDA only
    # true | false | auto | N blocks: how many transformer blocks recompute activations (ltxic.training.speed)
    gradient_checkpointing: bool | int | str = False
    compile: bool | str = False  # true | false | auto (on CUDA only): torch.compile each block (ltxic.training.speed)
    activation_memory_budget: float = 1.0  # compiled blocks keep this share of their activations (ltxic.training.speed)
    fp8_base: bool = False  # reported in OOM advice; the base is quantized when it is built
    block_offload: bool = False  # fp8 block weights wait in host memory, streamed per block (ltxic.models.offload)
    distributed: str = "auto"  # auto | ddp | fsdp: the mode under torchrun / accelerate launch (ltxic.training.distributed)
    progress: bool = True
    lora_metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1 (got {self.steps})")
        if self.grad_accumulation < 1:
            problems.append(f"grad_accumulation must be >= 1 (got {self.grad_accumulation})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.checkpoint_interval < 1:
            problems.append(f"checkpoint_interval must be >= 1 (got {self.checkpoint_interval})")
        if self.scheduler not in ("constant", "linear", "cosine"):
            problems.append(f"scheduler must be constant, linear or cosine (got {self.scheduler!r})")
        if self.distributed not in ("auto", "ddp", "fsdp"):
            problems.append(f"distributed must be 'auto', 'ddp' or 'fsdp' (got {self.distributed!r})")
        gc = self.gradient_checkpointing
        if not (isinstance(gc, bool) or gc == "auto" or (isinstance(gc, int) and gc >= 0)):
            problems.append(f"gradient_checkpointing must be true, false, 'auto' or a block count >= 0 (got {gc!r})")
        if self.block_offload and gc is not True:
            problems.append(f"model.block_offload needs optimization.gradient_checkpointing: true (got {gc!r}): a block "
                            "that keeps its activations also keeps its weights on the GPU")
        if not 0 < self.activation_memory_budget <= 1:
            problems.append(f"activation_memory_budget must be in (0, 1] (got {self.activation_memory_budget!r})")
        if self.compile not in (True, False, "auto"):
            problems.append(f"compile must be true, false or 'auto' (got {self.compile!r})")
        if self.block_offload and self.compile is True:
            problems.append("model.block_offload and optimization.compile cannot be combined yet: set compile: false")
        if self.mixed_precision not in ("bf16", "no"):
            problems.append(f"mixed_precision must be 'bf16' or 'no' (got {self.mixed_precision!r})")
        if problems:
            raise ValueError("invalid training options: " + "; ".join(problems))


@dataclass
class TrainResult:
    output_dir: Path
    step: int  # optimizer steps completed in total
    losses: list[float]  # the loss of each step this call ran
    checkpoint: Path | None  # the newest complete checkpoint folder
    lora_path: Path | None
    metrics_path: Path
    resumed_from: int | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------- determinism


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python versions (unlike ``hash``)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_generator(seed: int, step: int, micro: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """The noise generator of one micro-batch: a function of ``(seed, step, micro)`` only."""
    return torch.Generator(device=device).manual_seed(_mix(seed, 1, step, micro))


def sample_generator(seed: int, step: int, micro: int, position: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The noise generator of the sample at ``position`` in the (global) micro-batch ``micro`` of ``step``.

    Position 0 is :func:`step_generator`'s, so a batch of one draws what it always drew.
    """
    if position == 0:
        return step_generator(seed, step, micro, device)
    return torch.Generator(device=device).manual_seed(_mix(seed, 1, step, micro, position))


def noise_generators(strategy: Any, seed: int, step: int, micro: int, offset: int, count: int, dist: Any,
                     device: torch.device | str = "cpu") -> torch.Generator | list[torch.Generator]:
    """What ``strategy.loss`` draws its noise from: one generator per sample when the strategy takes a list
    (``per_sample_noise``), so the noise does not depend on how a global batch is split across ranks."""
    if getattr(strategy, "per_sample_noise", False) and (count > 1 or offset > 0):
        return [sample_generator(seed, step, micro, offset + j, device) for j in range(count)]
    if dist.enabled and not getattr(strategy, "per_sample_noise", False):  # a strategy without per-sample noise
        return torch.Generator(device=device).manual_seed(_mix(seed, 4, step, micro, dist.rank))
    return step_generator(seed, step, micro, device)


class DataOrder:
    """Which samples form micro-batch ``i``: a function of ``(seed, i)`` only.

    Each epoch shuffles the samples of every group (resolution bucket) with an epoch-seeded generator,
    cuts them into batches of ``batch_size`` (a bucket's last batch may be smaller; nothing is dropped),
    and shuffles the batches. The number of batches per epoch is fixed, so ``i`` maps to (epoch, position).
    """

    def __init__(self, groups: Sequence[Hashable], batch_size: int, seed: int) -> None:
        if not groups:
            raise TrainingError("the dataset has no samples to train on (did every clip get skipped? see the cache's skip report)")
        self.batch_size = batch_size
        self.seed = seed
        self._groups: dict[Hashable, list[int]] = {}
        for index, group in enumerate(groups):
            self._groups.setdefault(group, []).append(index)
        self.batches_per_epoch = sum(math.ceil(len(v) / batch_size) for v in self._groups.values())
        self._cache: tuple[int, list[list[int]]] | None = None

    def epoch(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        gen = torch.Generator().manual_seed(_mix(self.seed, 2, epoch))
        batches: list[list[int]] = []
        for key in sorted(self._groups, key=repr):
            members = self._groups[key]
            perm = torch.randperm(len(members), generator=gen).tolist()
            shuffled = [members[p] for p in perm]
            batches += [shuffled[i : i + self.batch_size] for i in range(0, len(shuffled), self.batch_size)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        result = [batches[o] for o in order]
        self._cache = (epoch, result)
        return result

    def batch(self, index: int) -> list[int]:
        epoch, position = divmod(index, self.batches_per_epoch)
        return self.epoch(epoch)[position]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "batches_per_epoch": self.batches_per_epoch}


# ------------------------------------------------------------------------------------------- optimization


def lr_lambda(options: TrainOptions) -> Callable[[int], float]:
    """Linear warm-up to the base rate, then constant, linear decay to 0 or cosine decay to 0."""
    warmup, total, kind = options.warmup_steps, options.steps, options.scheduler

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------- metrics


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop log lines past ``last_step`` (steps a killed run did after its last checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the crash
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def plot_metrics(path: str | os.PathLike[str], ax: Any = None) -> Any:
    """Plot loss (and video/audio loss when logged) and learning rate from a metrics log; returns the figure."""
    import matplotlib.pyplot as plt

    rows = read_metrics(path)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4))
    else:
        fig = ax.figure
    steps = [r["step"] for r in rows]
    for key in ("loss", "video_loss", "audio_loss"):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(steps, [math.nan if v is None else v for v in values], label=key, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r.get("lr", math.nan) for r in rows], color="grey", ls="--", lw=0.8, label="lr")
    lr_ax.set_ylabel("learning rate")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------------- batching


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        if device.type == "cuda" and value.device.type == "cpu":
            value = value.pin_memory()  # a copy from pageable memory would wait for the queued GPU work
        return value.to(device, non_blocking=True)
    if callable(getattr(value, "to", None)) and not isinstance(value, (dict, list, tuple)):
        return value.to(device)  # a sample type that knows how to move itself
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _to_device(getattr(value, f.name), device) for f in fields(value) if f.init})
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def default_collate(items: Sequence[Any]) -> Any:
    """One sample as is; several: tensors concatenated along their batch dim (0), other fields from the first."""
    if len(items) == 1:
        return items[0]
    first = items[0]

    def merge(values: list[Any]) -> Any:
        if isinstance(values[0], torch.Tensor):
            return torch.cat(values, dim=0)
        return values[0]

    if is_dataclass(first):
        return replace(first, **{f.name: merge([getattr(i, f.name) for i in items]) for f in fields(first) if f.init})
    if isinstance(first, dict):
        return {k: merge([i[k] for i in items]) for k in first}
    raise TypeError(f"cannot batch samples of type {type(first).__name__}; pass collate=")


def _logged(logs: dict[str, Any]) -> dict[str, torch.Tensor | float]:
    """The strategy's scalar logs under the metrics' names, tensors left on the device (no host sync)."""
    out: dict[str, torch.Tensor | float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.detach().float().reshape(())
        elif isinstance(value, (int, float)):
            value = float(value)
        else:
            continue
        # strategies may say "loss_video" or "video": the log always says "video_loss"
        name = f"{key[5:]}_loss" if key.startswith("loss_") else f"{key}_loss" if key in ("video", "audio") else key
        out[name] = value
    return out


def _oom_advice(options: TrainOptions, batch: Any) -> str:
    lines = [f"out of GPU memory at batch size {options.batch_size}. Lower one of these settings:"]
    lines.append(f"  optimization.batch_size (now {options.batch_size}; use gradient accumulation to keep the effective batch)")
    lines.append("  dataset.resolution_buckets: a smaller width x height or fewer frames")
    if options.gradient_checkpointing is not True:
        lines.append("  optimization.gradient_checkpointing: true (every block recomputes its activations: about a third "
                     "slower, much less activation memory)")
    if not options.fp8_base:
        lines.append("  model.fp8: true (stores the base model's weights in fp8: half the weight memory)")
    if options.mixed_precision != "bf16":
        lines.append("  optimization.mixed_precision: bf16")
    if torch.cuda.is_available():
        lines.append(f"(on the card: {torch.cuda.memory_allocated() / 2**30:.1f} GiB allocated, peak "
                     f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, {torch.cuda.memory_reserved() / 2**30:.1f} GiB "
                     "reserved; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True lowers fragmentation)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ loop


def run_training(
    model: torch.nn.Module,
    samples: Sequence[Any],
    strategy: Any,
    options: TrainOptions,
    *,
    save_lora: SaveLoraFn,
    groups: Sequence[Hashable] | None = None,
    collate: Callable[[Sequence[Any]], Any] = default_collate,
    validate: ValidateFn | None = None,
    resume: bool = False,
    device: torch.device | str | None = None,
    distributed: Any = None,
) -> TrainResult:
    """Train the parameters of ``model`` that require grad (the LoRA's) on ``samples``.

    Args:
        samples: cached, encoded samples; ``collate`` turns a list of them into what ``strategy.loss`` takes.
        strategy: anything with ``loss(model, batch, generator) -> (loss tensor, logs dict)``.
        save_lora: writes the LoRA file of a checkpoint: ``save_lora(model, path, metadata)``.
        groups: the resolution bucket of each sample (only same-bucket samples share a batch).
        validate: called as ``validate(model, step, folder)`` every ``options.validation_interval`` steps.
        resume: continue from the newest complete checkpoint in ``options.output_dir`` (none: start fresh).
        distributed: a :class:`ltxic.training.distributed.Distributed`; ``None`` joins the launcher's process group when
            ``WORLD_SIZE`` > 1 (mode ``options.distributed``). Rank 0 alone writes checkpoints, metrics and
            validation clips; every rank's RNG state is stored in the checkpoint.
    """
    from ltxic.training.distributed import setup

    dist = distributed if distributed is not None else setup(options.distributed, device)
    try:
        return _run_training(model, samples, strategy, options, save_lora=save_lora, groups=groups, collate=collate,
                             validate=validate, resume=resume, device=device, dist=dist)
    finally:
        if distributed is None:
            dist.close()


def _run_training(
    model: torch.nn.Module,
    samples: Sequence[Any],
    strategy: Any,
    options: TrainOptions,
    *,
    save_lora: SaveLoraFn,
    groups: Sequence[Hashable] | None,
    collate: Callable[[Sequence[Any]], Any],
    validate: ValidateFn | None,
    resume: bool,
    device: torch.device | str | None,
    dist: Any,
) -> TrainResult:
    started = time.perf_counter()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    output_dir = options.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = output_dir / METRICS_FILE

    if not trainable_parameters(model):
        raise TrainingError("the model has no trainable parameters: inject a LoRA first (ltxic.models.lora.inject_lora)")
    main = dist.is_main()
    # recompute first: FSDP2 shards the blocks as they are, and a compiled block is checkpointed from outside
    plan = RecomputePlan(model, options.gradient_checkpointing, distributed=dist.enabled)
    if options.block_offload:
        if dist.sharded:
            raise TrainingError("model.block_offload does not combine with optimization.distributed: fsdp (FSDP already "
                                "spreads the weights over the GPUs): set block_offload: false or distributed: ddp")
        moved = stream_block_weights(model, device)
        if not moved:
            raise TrainingError("model.block_offload: the transformer blocks hold no fp8 weights to stream; set "
                                "model.fp8: true")
        if main:
            print(f"ltxic train: {moved / 2**30:.1f} GiB of fp8 block weights wait in host memory and visit the GPU "
                  "block by block", file=sys.stderr, flush=True)
    forward_model = dist.wrap(model)  # DDP's wrapper, or the model sharded in place (FSDP2)
    compiled = options.compile is True or (options.compile == "auto" and device.type == "cuda"
                                            and not options.block_offload)
    if compiled:
        compile_blocks(model, memory_budget=options.activation_memory_budget)
    named = trainable_parameters(model)
    params = [p for _, p in named]
    # one fused kernel for all adapters: on a GPU the foreach default launches several per tensor group, on the CPU
    # the default loops over the tensors one by one (6.9 ms a step for the tiny kit's 224 adapters, fused 1.6 ms)
    fused = device.type in ("cuda", "cpu") and not dist.sharded and all(p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, betas=options.betas, weight_decay=options.weight_decay,
                                  **({"fused": True} if fused else {}))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(options))
    # the global batch: what a 1-process run with world size x batch size would draw; each rank takes its share
    order = DataOrder(list(groups) if groups is not None else [0] * len(samples), options.batch_size * dist.world_size,
                      options.seed)
    autocast = device.type == "cuda" and options.mixed_precision == "bf16"

    start_step, resumed_from, last_checkpoint = 0, None, None
    if resume:
        folder = latest_checkpoint(output_dir)
        if folder is None:
            # a first run with resume on (a lesson run twice continues; the first time there is nothing yet) is
            # normal, not a mistake to warn about: one line, without the machine's path
            if main:
                print(f"ltxic train: resume: no complete checkpoint in output.dir's {CHECKPOINTS}/ yet; starting from "
                      f"step 0", file=sys.stderr, flush=True)
        else:
            state = load_training_state(folder)
            names = [n for n, _ in named]
            if sorted(state["trainable"]) != sorted(names):
                raise TrainingError(
                    f"{folder / STATE_FILE}: its trainable weights do not match this model's LoRA "
                    f"({len(state['trainable'])} vs {len(names)} tensors). The config's lora section changed since the "
                    "checkpoint was written: restore it, or start a fresh run in another output.dir."
                )
            if state["data_order"] != order.state_dict():
                warnings.warn(f"{folder}: the dataset or batch size changed since this checkpoint; the data order differs from the original run", stacklevel=2)
            for name, param in named:
                dist.load_into(param, state["trainable"][name])
            dist.load_optimizer_state(model, optimizer, state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            ranks = state.get("rng_ranks")  # every rank's own RNG state, when the world size is the same
            set_rng_state(ranks[dist.rank] if ranks is not None and len(ranks) == dist.world_size else state["rng"])
            start_step = resumed_from = int(state["step"])
            last_checkpoint = folder
            dist.barrier()  # every rank has read the checkpoint before rank 0 rewrites the log or prunes
            if main:
                _truncate_metrics(metrics_path, start_step)
    elif metrics_path.exists() or list_checkpoints(output_dir):
        raise TrainingError(
            f"{output_dir} already holds a run (metrics or checkpoints). Pass --resume (resume=True) to continue it, "
            "or set output.dir to a new folder."
        )
    dist.barrier()  # every rank checked the output folder before rank 0 opens the log
    if dist.enabled and main:
        print(f"ltxic train: {dist.describe(options.batch_size, options.grad_accumulation)}", file=sys.stderr, flush=True)

    from ltxic.io.progress import progress as tqdm

    losses: list[float] = []
    bar = tqdm(total=options.steps, initial=start_step, desc="training", unit="it",
               disable=not (options.progress and main), dynamic_ncols=True)
    if device.type == "cuda":  # the metrics' peak_gib is the steps' own, not loading's
        torch.cuda.reset_peak_memory_stats(device)
    if main:
        print(f"ltxic train: {plan.describe()}" + (", blocks compiled" if compiled else "")
              + (f" (activation memory budget {options.activation_memory_budget:g})"
                 if compiled and options.activation_memory_budget < 1 else ""), file=sys.stderr,
              flush=True)
    model.train()

    def micro_batches(step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Forward and backward of one step's micro-batches; the loss and logs stay on the device."""
        # global-RNG users (LoRA dropout, anything a strategy draws without its generator) see a
        # state that depends only on (seed, step), whatever ran before (validation, a resume, a retry)
        torch.manual_seed(_mix(options.seed, 3, step))
        optimizer.zero_grad(set_to_none=True)
        total: Any = 0.0
        parts: dict[str, Any] = {}
        for micro in range(options.grad_accumulation):
            index = step * options.grad_accumulation + micro
            mine, offset, scale = dist.share(order.batch(index))
            weight = scale / dist.world_size  # this rank's share of the global batch (1 in one process)
            batch = _to_device(collate([samples[i] for i in mine]), device)
            generator = noise_generators(strategy, options.seed, step, micro, offset, len(mine), dist, device)
            with dist.sync_gradients(forward_model, micro == options.grad_accumulation - 1):
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss, logs = strategy.loss(forward_model, batch, generator)
                # ranks' gradients are averaged: scale makes that the global batch's mean-loss gradient
                ((loss if scale == 1.0 else loss * scale) / options.grad_accumulation).backward()
            share = weight / options.grad_accumulation
            total = total + loss.detach().float() * share
            for key, value in _logged(logs).items():
                if key != "loss":
                    parts[key] = parts.get(key, 0.0) + value * share
        return total, parts

    # A step's numbers are read (a host sync) only after the next step's work is queued, so the GPU never
    # waits for the host between steps; with several processes they are summed over the ranks at once.
    pending: dict[str, Any] | None = None
    timer = StepTimer(device)

    def flush(log: Any) -> None:
        nonlocal pending
        if pending is None:
            return
        row, pending = pending, None
        values = {k: float(v) for k, v in row.pop("values").items()}
        if dist.enabled:  # the global batch's loss, as a 1-process run logs it
            values = dist.sum_floats(values)
        total = values.pop("loss")
        if not math.isfinite(total):
            raise TrainingError(
                f"loss became {total} at step {row['step']}. Lower optimization.learning_rate "
                f"(now {options.learning_rate}) or set optimization.max_grad_norm (now {options.max_grad_norm})."
            )
        row = {"step": row["step"], "loss": total, **values, "lr": row["lr"], "grad_norm": float(row["grad_norm"]),
               "seconds": StepTimer.seconds(row["span"])}
        if device.type == "cuda":
            row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        log.write(json.dumps(row) + "\n")
        log.flush()
        losses.append(total)
        bar.set_postfix(loss=f"{total:.4f}", lr=f"{row['lr']:.2e}")
        bar.update(1)

    try:
        with (metrics_path if main else Path(os.devnull)).open("a", encoding="utf-8") as log:
            try:
                for step in range(start_step, options.steps):
                    while True:
                        try:
                            total, parts = micro_batches(step)
                            break
                        except torch.OutOfMemoryError as err:
                            if not plan.more():
                                raise TrainingOOMError(_oom_advice(options, None)) from err
                        free_after_oom(device)  # outside the except block: the traceback no longer holds the step
                    flush(log)  # the previous step, while this one runs on the GPU
                    clip = options.max_grad_norm if options.max_grad_norm > 0 else float("inf")
                    grad_norm = dist.full_tensor(torch.nn.utils.clip_grad_norm_(params, clip))
                    lr = scheduler.get_last_lr()[0]
                    try:
                        optimizer.step()  # AdamW allocates its moment buffers here, on the first step
                    except torch.OutOfMemoryError as err:
                        raise TrainingOOMError(_oom_advice(options, None)) from err
                    scheduler.step()
                    done = step + 1
                    pending = {"step": done, "values": {"loss": total, **parts}, "lr": lr, "grad_norm": grad_norm.detach(),
                               "span": timer.end_step()}
                    checkpoint_due = done % options.checkpoint_interval == 0 or done == options.steps
                    validation_due = bool(validate is not None and options.validation_interval
                                          and done % options.validation_interval == 0)
                    due = checkpoint_due or validation_due or dist.enabled
                    if due:
                        flush(log)

                    if checkpoint_due:
                        # collectives first (every rank): full LoRA tensors, optimizer state, each rank's RNG state
                        full = {n: dist.full_tensor(p.detach()) for n, p in named}
                        optimizer_state = dist.optimizer_state(model, optimizer)
                        rngs = dist.gather_objects(rng_state())
                        if main:
                            state = {
                                "step": done,
                                "trainable": {n: t.float().cpu().clone() for n, t in full.items()},
                                "optimizer": optimizer_state,
                                "scheduler": scheduler.state_dict(),
                                "data_order": order.state_dict(),
                                "rng": rngs[0],
                            }
                            if dist.enabled:
                                state["rng_ranks"] = rngs
                            with dist.full_parameters(model, full) as whole:
                                save_checkpoint(output_dir, done, whole, state, save_lora, options.lora_metadata,
                                                options.keep_last_n)
                        dist.barrier()
                        last_checkpoint = output_dir / CHECKPOINTS / checkpoint_name(done)
                    if validation_due:
                        # rank 0 validates; under FSDP every rank runs the sampler (the forward gathers shards) and the
                        # others' clips go to a temp folder that is deleted
                        if main or dist.sharded:
                            with contextlib.ExitStack() as stack:
                                folder = output_dir / "validation" / checkpoint_name(done)
                                if not main:
                                    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                                model.eval()
                                with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                                                     enabled=autocast):
                                    validate(model, done, folder)
                                model.train()
                        dist.barrier()
                    if due:
                        timer.restart()  # a step's seconds leave out checkpoints and validation
            except BaseException:
                with contextlib.suppress(Exception):
                    flush(log)  # the last finished step's row, written before the error surfaces
                raise
    finally:
        bar.close()

    return TrainResult(
        output_dir=output_dir,
        step=options.steps,
        losses=losses,
        checkpoint=last_checkpoint,
        lora_path=last_checkpoint / LORA_FILE if last_checkpoint else None,
        metrics_path=metrics_path,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------------------- from a config
