"""Wall time and peak accelerator memory per named stage (Gemma encode, VAE encode, stage 1, ...).

``clock = StageClock(); with clock("vae encode"): ...`` adds the block's seconds to that stage and keeps the
largest peak of CUDA memory seen inside it (``torch.cuda.max_memory_allocated``, reset when the block starts).
On a CPU only the time is kept. Blocks of one clock must not nest (the peak counter is global).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass
class StageStats:
    seconds: float = 0.0
    calls: int = 0
    peak_gib: float | None = None


class StageClock:
    def __init__(self) -> None:
        self.stages: dict[str, StageStats] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize()
            stats = self.stages.setdefault(name, StageStats())
            stats.seconds += time.perf_counter() - start
            stats.calls += 1
            if cuda:
                peak = torch.cuda.max_memory_allocated() / 2**30
                stats.peak_gib = max(stats.peak_gib or 0.0, round(peak, 2))

    @classmethod
    def from_dict(cls, stages: dict[str, dict[str, float | int | None]]) -> StageClock:
        """A clock holding stages read back from :meth:`as_dict` (e.g. a run's ``stages.json``)."""
        clock = cls()
        clock.stages = {name: StageStats(**stats) for name, stats in stages.items()}  # type: ignore[arg-type]
        return clock

    def as_dict(self) -> dict[str, dict[str, float | int | None]]:
        return {name: asdict(stats) for name, stats in self.stages.items()}

    def table(self) -> str:
        rows = [f"{'stage':<22} {'seconds':>9} {'calls':>6} {'peak GiB':>9}"]
        for name, s in self.stages.items():
            peak = f"{s.peak_gib:.1f}" if s.peak_gib is not None else "-"
            rows.append(f"{name:<22} {s.seconds:>9.2f} {s.calls:>6} {peak:>9}")
        return "\n".join(rows)



class StepTimer:
    """Seconds per training step on the device's own timeline, with no host sync of its own.

    On a GPU a CUDA event is recorded as each step's work is queued to end; a step's seconds are the time between
    its event and the previous one, read when the step is logged (by then it has run). That is the step period the
    card sees, host stalls included. On the CPU the host clock is the timeline.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.last = self._mark()

    def _mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def restart(self) -> None:
        """The next step starts now (after a checkpoint or validation, which are not a step's time)."""
        self.last = self._mark()

    def end_step(self) -> tuple[Any, Any]:
        """Mark the end of the step just queued; pass the result to :meth:`seconds` when logging it."""
        span = (self.last, self._mark())
        self.last = span[1]
        return span

    @staticmethod
    def seconds(span: tuple[Any, Any]) -> float:
        start, end = span
        if isinstance(end, float):
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1e3

__all__ = ["StepTimer", "StageClock", "StageStats"]
