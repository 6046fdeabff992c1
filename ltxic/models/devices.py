"""Where a process puts its models: the GPU a launcher gave it, or the CPU."""

from __future__ import annotations

import os

import torch


def env_world_size() -> int:
    """The number of processes a launcher (torchrun, accelerate) started; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def device_for(local_rank: int | None = None) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` under a launcher with GPUs, else ``cuda`` or ``cpu``."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if env_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank)
    return torch.device("cuda")


__all__ = ["device_for", "env_world_size"]
