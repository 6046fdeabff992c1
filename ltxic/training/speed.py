"""How the training step uses the card: activation recompute per block, compiled blocks.

Two settings of ``optimization`` decide most of a 22B step's time (``benchmarks/train_speed.py`` measures them):

* ``gradient_checkpointing``: how many of the transformer's blocks recompute their activations in the backward
  pass instead of storing them. ltx-core's own switch is all blocks or none; recomputing a block costs one more
  forward of it (about a third of its step), storing it costs its activations (about 0.8 GiB per block at
  768x448x49 with a reference image). ``true`` recomputes every block (the least memory), ``false`` none (the
  fastest), a number N the first N blocks, and ``auto`` starts with none and, when a step runs out of memory,
  recomputes a 24th more of the blocks (2 of 48) and runs that step again: the fastest setting that fits the card. The
  step is redone from the same random state, so what is learned does not depend on the retries.
* ``compile``: ``torch.compile`` of each transformer block (regional compilation: the 48 blocks share one
  compiled graph). It fuses the elementwise work around the matmuls (adaLN modulation, RMSNorm, RoPE, gates,
  the adapters' scale and add) and removes most kernel launches. The first step pays the compilation.
* ``activation_memory_budget``: with compiled blocks, the share of a block's activations kept for backward; the
  compiler recomputes the cheapest of the rest. Measured on the CPU at full block size (768x448x49): a block keeps
  1.11 GiB at 1.0, 0.81 GiB at 0.5, 0.60 GiB at 0.2. On one H200, 0.5 (shipped in ``ltx23_h100``) fits all 48 blocks
  in 80 GB with none recomputed whole: 0.63 s a step against 0.82 s at 1.0 with 24 whole blocks recomputed
  (``benchmarks/README.md``, call 10).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

Recompute = bool | int | Literal["auto"]
LADDER_STEPS = 24  # auto recomputes 0, 1/24, 2/24, ... of the blocks (2 more at a time at 22B)


def _blocks(model: nn.Module) -> nn.ModuleList | None:
    blocks = getattr(model, "transformer_blocks", None)
    return blocks if isinstance(blocks, nn.ModuleList) and hasattr(model, "_process_transformer_blocks") else None


def _process_blocks(self: nn.Module, video: Any, audio: Any, perturbations: Any) -> tuple[Any, Any]:
    """ltx-core's block loop, with recompute for the first ``self.ltxic_recompute_blocks`` blocks."""
    recompute = self.ltxic_recompute_blocks if self.training and torch.is_grad_enabled() else 0
    # a recompute normally stops once it has rebuilt what backward needs; a block whose weights are streamed
    # (ltxic.models.offload) must run to its end, where its weights leave the GPU again
    early_stop = not getattr(self, "ltxic_streamed_blocks", False)
    for index, block in enumerate(self.transformer_blocks):
        if index < recompute:
            with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
                video, audio = torch.utils.checkpoint.checkpoint(block, video, audio, perturbations,
                                                                 use_reentrant=False)
        else:
            video, audio = block(video=video, audio=audio, perturbations=perturbations)
    return video, audio


def set_recompute(model: nn.Module, blocks: int) -> int:
    """Recompute the activations of the first ``blocks`` transformer blocks in backward; returns the count set.

    ``blocks`` is clamped to ``[0, number of blocks]``; the model's own all-or-nothing switch is turned off.
    Models without ltx-core's block loop (none ship today) fall back to that switch.
    """
    layers = _blocks(model)
    if layers is None:
        if hasattr(model, "set_gradient_checkpointing"):
            model.set_gradient_checkpointing(blocks > 0)
        return blocks
    blocks = max(0, min(int(blocks), len(layers)))
    if hasattr(model, "set_gradient_checkpointing"):
        model.set_gradient_checkpointing(False)
    model.ltxic_recompute_blocks = blocks
    if "_process_transformer_blocks" not in model.__dict__:
        model._process_transformer_blocks = types.MethodType(_process_blocks, model)
    return blocks


def block_count(model: nn.Module) -> int:
    layers = _blocks(model)
    return len(layers) if layers is not None else 1


class RecomputePlan:
    """The recompute setting of a run; under ``auto`` it climbs the ladder on out-of-memory errors."""

    def __init__(self, model: nn.Module, setting: Recompute, *, distributed: bool = False) -> None:
        self.model, self.total = model, block_count(model)
        self.auto = setting == "auto"
        if self.auto and distributed:
            # ranks cannot retry a step on their own (the others would wait in a collective): recompute every
            # block, and let the user pin the number a one-GPU run chose
            print("ltxic train: gradient_checkpointing auto under several processes recomputes every block; set the "
                  "number a one-GPU run chose (its stages.json 'recompute_blocks') to go faster", file=sys.stderr)
            self.auto = False
            setting = True
        if self.auto:
            blocks = 0
        elif isinstance(setting, bool):
            blocks = self.total if setting else 0
        else:
            blocks = int(setting)
        self.blocks = set_recompute(model, blocks)

    def more(self) -> bool:
        """Recompute a 24th more of the blocks (``auto`` only); False when there is nothing left to give."""
        if not self.auto or self.blocks >= self.total:
            return False
        step = max(1, -(-self.total // LADDER_STEPS))
        self.blocks = set_recompute(self.model, self.blocks + step)
        print(f"ltxic train: out of memory; gradient_checkpointing auto now recomputes {self.blocks} of {self.total} "
              "blocks and redoes the step", file=sys.stderr, flush=True)
        return True

    def describe(self) -> str:
        how = "auto: " if self.auto else ""
        return f"{how}recompute {self.blocks} of {self.total} blocks"


def compile_blocks(model: nn.Module, memory_budget: float = 1.0) -> int:
    """``torch.compile`` each transformer block in place (regional compilation); returns how many.

    ``memory_budget`` < 1 asks the compiler to keep only that share of a block's activations for backward and
    recompute the cheapest of the rest (torch's ``activation_memory_budget``, a process-wide setting read when the
    blocks compile at the first step): selective recompute inside every block instead of whole blocks.
    """
    layers = _blocks(model)
    if layers is None:
        return 0
    import torch._functorch.config

    if torch._functorch.config.activation_memory_budget != memory_budget:
        torch._dynamo.reset()  # graphs compiled under another budget would be reused as they are
        torch._functorch.config.activation_memory_budget = memory_budget
    # each block keeps its index as an int attribute, which dynamo would specialise on: 48 compiles, and blocks past
    # the recompile limit (8) silently left eager. Unspecialised, all blocks share one compiled graph.
    torch._dynamo.config.allow_unspec_int_on_nn_module = True
    _traceable_attention(layers)
    for block in layers:
        block.compile()
    model.ltxic_compiled = True  # what stages.json reports
    return len(layers)


def _traceable_attention(layers: nn.ModuleList) -> None:
    """Give every attention ltx-core's SDPA callable instead of the ``AttentionFunction`` enum member.

    Dynamo cannot trace a call to an enum member, so each of a block's attentions broke its graph in two (28
    graphs per block). ``AttentionFunction.DEFAULT`` is PyTorch's SDPA unless xformers is installed; a model
    that asked for xformers or FlashAttention 3 keeps its choice.
    """
    from ltx_core.model.transformer.attention import Attention, AttentionFunction, PytorchAttention

    for module in layers.modules():
        if isinstance(module, Attention) and module.attention_function in (AttentionFunction.DEFAULT,
                                                                           AttentionFunction.PYTORCH):
            module.attention_function = PytorchAttention()


def free_after_oom(device: torch.device) -> None:
    """Return the memory of an abandoned step to the allocator before retrying it."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


__all__ = ["LADDER_STEPS", "Recompute", "RecomputePlan", "block_count", "compile_blocks", "set_recompute"]


def plot_step_speed(results: Mapping[str, Mapping[str, Any]], *, cap_gib: float, card: str = "H100 80 GB") -> Any:
    """Median step time and peak GPU memory side by side, one bar per ``label -> result`` (the per-variant JSON of
    ``benchmarks/train_speed.py``): grey for plain loops (labels starting with "plain"), blue for ltxic's trainer,
    and ``card``'s memory ``cap_gib`` as a dashed line (the course passes ``ltxic.course.facts.card_memory_gib()``,
    so every chart draws the same line). Compare bars of one run only: step times move between machines."""
    import matplotlib.pyplot as plt

    labels = list(results)
    colors = ["grey" if label.startswith("plain") else "C0" for label in labels]
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(9, 3))
    ax_time.bar(labels, [r["step_median_s"] for r in results.values()], color=colors)
    ax_time.set(ylabel="median step (s)", title="compare within a run")
    ax_mem.bar(labels, [r["peak_gib"] for r in results.values()], color=colors)
    ax_mem.axhline(cap_gib, ls="--", color="grey", lw=1)
    ax_mem.set(ylabel="peak GPU memory (GiB)", title=f"dashed: an {card}'s {cap_gib:.1f} GiB")
    for ax in (ax_time, ax_mem):
        ax.set_xticks(range(len(labels)), [label.replace(", ", "\n") for label in labels], fontsize=8)
    return fig
