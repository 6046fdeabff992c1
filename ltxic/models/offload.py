"""Layer streaming: weights wait in (pinned) host memory and visit the GPU one layer at a time.

Two users:

* :func:`stream_layers`, for inference. Gemma 3 12B is 22 GiB in bfloat16: a 24 GB card cannot hold it beside
  anything else. It only encodes captions (once per dataset, before training), so its decoder layers live in host
  memory and are copied to the card just before each runs.
* :func:`stream_block_weights`, for training on a 24 GB card (``model.block_offload``). The transformer's fp8 block
  weights (18 GiB at 22B) stay in host memory; each block's weights visit the card for its forward, and again for
  its recompute in the backward pass.

Either way the copy of the next layer (the previous one in the backward pass) overlaps the current one's compute on
a side stream, so the GPU holds one or two layers' weights instead of 48.

The hooks swap ``param.data``. That is safe for autograd only where nothing keeps the parameter itself for
backward: under ``torch.no_grad`` (inference), or for fp8 weights, which every matmul upcasts to a new tensor
(:func:`ltxic.models.lora.upcast_linear` keeps an alias of the GPU copy, which outlives the swap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ltxic.models.transformer import FLOAT8


class _Streamer:
    """Host copies of the selected tensors of ``layers``, and hooks that bring each layer's to ``device`` in time."""

    def __init__(self, layers: Sequence[nn.Module], device: torch.device,
                 select: Callable[[torch.Tensor], bool]) -> None:
        self.device, self.count = device, len(layers)
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.host: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        for layer in layers:
            pairs = []
            for tensor in [*layer.parameters(), *layer.buffers()]:
                if not select(tensor):
                    continue
                cpu = tensor.data.to("cpu")
                if self.cuda:
                    cpu = cpu.pin_memory()
                tensor.data = cpu
                pairs.append((tensor, cpu))
            self.host.append(pairs)
        self.pending: dict[int, list[torch.Tensor]] = {}
        for i, layer in enumerate(layers):
            layer.register_forward_pre_hook(self._before(i))
            layer.register_forward_hook(self._after(i))

    @property
    def host_bytes(self) -> int:
        return sum(cpu.numel() * cpu.element_size() for pairs in self.host for _, cpu in pairs)

    def _fetch(self, i: int) -> None:
        if not 0 <= i < self.count or i in self.pending:
            return
        if self.cuda:
            with torch.cuda.stream(self.copy_stream):
                self.pending[i] = [cpu.to(self.device, non_blocking=True) for _, cpu in self.host[i]]
        else:  # a CPU "device": a private copy, so the swap (and what autograd keeps) is the same as on a GPU
            self.pending[i] = [cpu.clone() for _, cpu in self.host[i]]

    def _before(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: object) -> None:
            self._fetch(i)
            if self.cuda:
                current = torch.cuda.current_stream(self.device)
                current.wait_stream(self.copy_stream)
            for (tensor, _), copy in zip(self.host[i], self.pending.pop(i)):
                if self.cuda:
                    copy.record_stream(current)
                tensor.data = copy
            # the backward pass recomputes the blocks last to first: fetch the one it needs next
            backward = torch._C._current_graph_task_id() != -1
            self._fetch(i - 1 if backward else i + 1)

        return hook

    def _after(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            for tensor, cpu in self.host[i]:
                tensor.data = cpu

        return hook


def stream_layers(layers: Sequence[nn.Module], device: torch.device | str) -> None:
    """Keep ``layers`` (run in this order, without gradients) in pinned CPU memory; each visits ``device`` in time.

    The module's other parts stay where they are: move them to ``device`` yourself. On a CPU ``device`` the layers
    are simply moved there.
    """
    device = torch.device(device)
    if device.type != "cuda":
        for layer in layers:
            layer.to(device)
        return
    _Streamer(layers, device, lambda tensor: True)


def stream_block_weights(model: nn.Module, device: torch.device | str) -> int:
    """Training: keep the fp8 tensors of ``model.transformer_blocks`` in host memory; returns the bytes moved there.

    Every block must recompute its activations in the backward pass (``gradient_checkpointing: true``): a block
    that keeps them also keeps its weights' GPU copy until backward, which would save nothing. Weights in other
    dtypes (norms, modulation tables) and the LoRA adapters stay on ``device``. On a CPU ``device`` the swap still
    happens (a private copy per visit): slow and pointless, but the same code path, for tests.
    """
    blocks = getattr(model, "transformer_blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no transformer_blocks to stream")
    streamer = getattr(model, "ltxic_block_streamer", None)
    if streamer is None:  # a second training run on the same model keeps the first one's streaming
        streamer = _Streamer(blocks, torch.device(device), lambda tensor: tensor.dtype in FLOAT8)
        model.ltxic_block_streamer = streamer
        model.ltxic_streamed_blocks = True  # ltxic.training.speed: recompute runs each block to its end (its forward hook)
    return streamer.host_bytes


__all__ = ["stream_block_weights", "stream_layers"]
