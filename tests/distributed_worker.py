"""One rank of a multi-process training run on the tiny LTX-2 base (started by tests/test_distributed.py via torchrun).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py OUT STEPS INTERVAL \\
        BATCH MODE [SLOW_AFTER] [--resume]

Also imported by the test for the 1-process reference run (same samples, same options).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import trainer_standins as standins  # noqa: E402
from ltxic.models.strategies import collate  # noqa: E402
from ltxic.training.trainer import run_training  # noqa: E402

SAMPLES = 5  # with a global batch of 4: batches of 4 and 1 (one rank gets an empty share of the second)


def run(out: Path, steps: int, interval: int, batch: int, mode: str = "auto", slow_after: int = 0, resume: bool = False):
    strategy = standins.strategy()
    if slow_after:
        strategy = standins.Slow(strategy, slow_after, 0.3)
    options = standins.options(out, steps, interval, batch_size=batch, grad_accumulation=2, distributed=mode)
    return run_training(standins.make_model(), standins.make_samples(SAMPLES), strategy, options,
                        save_lora=standins.save_adapter, groups=[0] * SAMPLES, collate=collate, resume=resume)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    args = [a for a in sys.argv[1:] if a != "--resume"]
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pid.rank{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
    run(out, int(args[1]), int(args[2]), int(args[3]), args[4], int(args[5]) if len(args) > 5 else 0,
        resume="--resume" in sys.argv)
