"""What one LTX-2.3 22B block keeps for backward at 768x448x49, measured on the CPU (no GPU needed).

Builds the official config with one block at full width (bf16, the ``ltx23_h100`` LoRA: rank 128 on every attention
and feed-forward Linear), runs the training loss on the ``train_speed`` workload (2352 target + 336 reference video
tokens, 52 + 251 audio tokens, 1024 text tokens) under bf16 autocast, and counts the bytes of the tensors autograd
keeps inside the block (parameters excluded: they are stored anyway). Compiled as ``ltxic train`` compiles it, for
each ``activation_memory_budget``; ``--fp8`` stores the block weights in fp8 as ``model.fp8`` does.

    python benchmarks/block_memory.py --budgets 1.0,0.5,0.2 [--fp8] [--eager] --out results/block_memory.json

About 2 minutes per setting on 2 CPU cores, 10 GB of RAM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_speed  # noqa: E402 - the workload and config helpers of the GPU benchmark

GIB = 2**30


def kept_by_block(budget: float | None, fp8: bool) -> dict:
    from ltxic.models.miniature_parts import random_transformer
    from ltxic.training.speed import compile_blocks
    from ltxic.models.strategies import collate
    from ltxic.training.trainer import prepare_lora

    cfg = train_speed.load_cfg("ltx23_h100", {}, Path("unused"), 1)
    model = random_transformer("full", fp8=fp8, seed=0, num_layers=1)  # as train_speed builds the 22B model
    prepare_lora(model, cfg, torch.device("cpu"))
    model.train()
    if budget is not None:
        compile_blocks(model, memory_budget=budget)
    batch = collate(train_speed.cached_samples(cfg, train_speed.WORKLOAD, "full", count=1))
    block, inside, kept = model.transformer_blocks[0], [False], {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if inside[0] and key not in params:
            kept[key] = (tuple(t.shape), str(t.dtype), t.untyped_storage().nbytes())
        return t

    block.register_forward_pre_hook(lambda m, a: inside.__setitem__(0, True))
    block.register_forward_hook(lambda m, a, o: inside.__setitem__(0, False))
    started = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        train_speed.strategy_for(cfg).loss(model, batch, torch.Generator().manual_seed(0))
    weights = sum(b for shape, _, b in kept.values() if len(shape) == 2 and min(shape) >= 2048 and 2688 not in shape)
    return {"compiled": budget is not None, "activation_memory_budget": budget, "fp8": fp8,
            "kept_gib": round(sum(b for *_, b in kept.values()) / GIB, 3), "tensors": len(kept),
            "weight_copies_gib": round(weights / GIB, 3), "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="1.0,0.5,0.2")
    parser.add_argument("--fp8", action="store_true")
    parser.add_argument("--eager", action="store_true", help="also measure the uncompiled block")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    settings = ([None] if args.eager else []) + [float(b) for b in args.budgets.split(",") if b]
    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for budget in settings:
        row = kept_by_block(budget, args.fp8)
        print(json.dumps(row), flush=True)
        rows.append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"workload": train_speed.WORKLOAD, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
