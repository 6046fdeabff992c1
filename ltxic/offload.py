"""Layer streaming for inference: weights wait in pinned CPU memory and visit the GPU one layer at a time.

Gemma 3 12B is 22 GiB in bfloat16: a 24 GB card cannot hold it beside anything else. It only encodes captions
(once per dataset, before training), so its decoder layers can live in host memory and be copied to the card
just before each runs; the copy of the next layer overlaps the current one's compute (a side stream). The GPU
then holds one or two layers instead of 48.

Only for modules run without gradients: the hooks swap ``param.data``, which autograd would not see.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def stream_layers(layers: Sequence[nn.Module], device: torch.device | str) -> None:
    """Keep ``layers`` (run in this order) in pinned CPU memory; copy each to ``device`` just in time, drop it after.

    The module's other parts stay where they are: move them to ``device`` yourself.
    """
    device = torch.device(device)
    if device.type != "cuda":
        for layer in layers:
            layer.to(device)
        return
    copy_stream = torch.cuda.Stream(device)
    host: list[list[tuple[nn.Parameter | torch.Tensor, torch.Tensor]]] = []
    for layer in layers:
        pairs = []
        for tensor in [*layer.parameters(), *layer.buffers()]:
            cpu = tensor.data.to("cpu")
            cpu = cpu.pin_memory()
            tensor.data = cpu
            pairs.append((tensor, cpu))
        host.append(pairs)
    pending: dict[int, list[torch.Tensor]] = {}

    def fetch(i: int) -> None:
        if i >= len(layers) or i in pending:
            return
        with torch.cuda.stream(copy_stream):
            pending[i] = [cpu.to(device, non_blocking=True) for _, cpu in host[i]]

    def make_hooks(i: int):
        def before(module: nn.Module, args: object) -> None:
            fetch(i)
            torch.cuda.current_stream(device).wait_stream(copy_stream)
            for (tensor, _), gpu in zip(host[i], pending.pop(i)):
                gpu.record_stream(torch.cuda.current_stream(device))
                tensor.data = gpu
            fetch(i + 1)  # the next layer's copy overlaps this layer's compute

        def after(module: nn.Module, args: object, output: object) -> None:
            for tensor, cpu in host[i]:
                tensor.data = cpu

        return before, after

    for i, layer in enumerate(layers):
        before, after = make_hooks(i)
        layer.register_forward_pre_hook(before)
        layer.register_forward_hook(after)


__all__ = ["stream_layers"]
