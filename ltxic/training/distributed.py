"""Multi-process training: ``ltxic train CONFIG`` under ``torchrun`` or ``accelerate launch``, unchanged.

The launcher sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` reads them, starts the process group
(NCCL on CUDA, gloo on CPU) and returns a :class:`Distributed` that the training loop asks what to do. Every byte
that crosses processes goes through PyTorch's own packages: ``DistributedDataParallel`` or FSDP2 (``fully_shard``)
for the gradients, ``torch.distributed`` collectives for the logged loss and the RNG states, and
``torch.distributed.checkpoint.state_dict`` for the optimizer state of a sharded run.

Modes (``optimization.distributed``):

* ``ddp``: the full base on every rank; the LoRA's gradients are averaged by ``DistributedDataParallel``.
* ``fsdp``: the base weights (and the LoRA) sharded across ranks with FSDP2, block by block, then the root.
* ``auto``: ``ddp`` when ``WORLD_SIZE > 1``; with one process every mode is the plain single-process loop.

The batch: with world size ``W`` and batch size ``B`` the loop draws a global batch of ``W x B`` samples (the
1-process batch of a run with batch size ``W x B``) and rank ``r`` trains on its contiguous share. Each rank's loss
is scaled by ``W x (its samples) / (global samples)`` so that the gradient average equals the gradient of the
global batch's mean loss, also when a bucket's last batch does not divide evenly. The noise of each sample comes
from a generator seeded by ``(seed, step, micro-batch, position in the global batch)``, so it does not depend on how
the batch was split: a 2-process run trains the same LoRA as a 1-process run with twice the batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ltxic.models.devices import env_world_size

MODES = ("auto", "ddp", "fsdp")


@dataclass
class Distributed:
    """Where this process stands; the single-process default does nothing at every call."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp
    owns_group: bool = False
    _ddp: Any = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def sharded(self) -> bool:
        return self.mode == "fsdp"

    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def describe(self, batch_size: int, accumulation: int) -> str:
        effective = self.world_size * batch_size * accumulation
        return (f"effective batch size {effective} = world size {self.world_size} x batch size {batch_size} "
                f"x gradient accumulation {accumulation} (mode: {self.mode if self.enabled else 'single process'})")

    # ---------------------------------------------------------------------------------------- the model

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call in the forward pass: ``model`` itself, its DDP wrapper, or ``model`` sharded in place."""
        if not self.enabled:
            return model
        if self.mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.local_rank] if next(model.parameters()).device.type == "cuda" else None
            # find_unused_parameters: a video-only batch leaves the audio adapters without a gradient
            self._ddp = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)
            return self._ddp
        from torch.distributed.fsdp import fully_shard

        _register_block_io()
        blocks = getattr(model, "transformer_blocks", None)
        for block in blocks if blocks is not None else []:
            fully_shard(block)
        fully_shard(model)
        return model

    def sync_gradients(self, module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Around one micro-batch's backward: gradients are averaged across ranks only when ``sync``."""
        if self.enabled and self.mode == "ddp" and not sync:
            return self._ddp.no_sync()
        if self.enabled and self.mode == "fsdp":
            module.set_requires_gradient_sync(sync)  # type: ignore[operator]
        return contextlib.nullcontext()

    # ---------------------------------------------------------------------------------------- the batch

    def share(self, global_batch: Sequence[int]) -> tuple[list[int], int, float]:
        """This rank's contiguous share of a global batch: (sample indices, offset of the first, loss scale).

        The loss scale makes the cross-rank gradient average equal the gradient of the global batch's mean loss.
        A rank whose share is empty (a bucket's last, short batch) trains on the first sample with scale 0, so that
        it still takes part in the gradient average.
        """
        n, world = len(global_batch), self.world_size
        base, extra = divmod(n, world)
        sizes = [base + (r < extra) for r in range(world)]
        start = sum(sizes[: self.rank])
        mine = list(global_batch[start : start + sizes[self.rank]])
        if not mine:
            return [global_batch[0]], 0, 0.0
        return mine, start, len(mine) * world / n

    def sum_floats(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` summed over the ranks (every rank passes the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._collective_device())
        torch.distributed.all_reduce(tensor)
        return dict(zip(keys, tensor.cpu().tolist()))

    # ---------------------------------------------------------------------------------------- state

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (``None`` elsewhere); ``[obj]`` in a single process."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main() else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def full_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """The whole tensor of a sharded parameter (a collective: every rank calls it)."""
        full = getattr(tensor, "full_tensor", None)
        return full() if full is not None else tensor

    def load_into(self, param: torch.nn.Parameter, value: torch.Tensor) -> None:
        """Copy a full tensor into a parameter, sharding it the way the parameter is."""
        with torch.no_grad():
            if hasattr(param, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                value = distribute_tensor(value.to(param.dtype), param.device_mesh, param.placements)
                param.copy_(value.to(param.device))
            else:
                param.copy_(value.to(param.device, param.dtype))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        if not self.sharded or not self.enabled:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        if not self.sharded or not self.enabled:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))

    @contextlib.contextmanager
    def full_parameters(self, model: torch.nn.Module, full: dict[str, torch.Tensor]) -> Iterator[torch.nn.Module]:
        """``model`` with the named (sharded) parameters replaced by their full tensors, for writing the LoRA file."""
        if not self.sharded or not self.enabled:
            yield model
            return
        swapped = []
        for name, tensor in full.items():
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            swapped.append((owner, leaf, owner._parameters[leaf]))
            owner._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
        try:
            yield model
        finally:
            for owner, leaf, original in swapped:
                owner._parameters[leaf] = original

    def _collective_device(self) -> torch.device:
        backend = torch.distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False


def _register_block_io() -> None:
    """Make ltx-core's block inputs and outputs (frozen dataclasses of tensors) visible to FSDP2.

    FSDP2 finds the tensors a block returns with ``torch.utils._pytree`` to gather the block's weights again before
    its backward; a dataclass it cannot see into leaves the weights freed and the backward fails.
    """
    from torch.utils import _pytree

    try:
        from ltx_core.model.transformer.transformer_args import TransformerArgs
    except ImportError:  # pragma: no cover - another transformer
        return
    if TransformerArgs not in _pytree.SUPPORTED_NODES:
        _pytree.register_dataclass(TransformerArgs)


def setup(mode: str = "auto", device: torch.device | None = None) -> Distributed:
    """Join the launcher's process group (``WORLD_SIZE`` > 1) or return the single-process :class:`Distributed`."""
    if mode not in MODES:
        raise ValueError(f"optimization.distributed must be one of {', '.join(MODES)} (got {mode!r})")
    world = env_world_size()
    if world <= 1:
        return Distributed()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not torch.distributed.is_initialized():
        cuda = (device is None or torch.device(device).type == "cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
        owns = True
    return Distributed(world_size=world, rank=rank, local_rank=local_rank,
                       mode="ddp" if mode == "auto" else mode, owns_group=owns)



__all__ = ["MODES", "Distributed", "setup"]
