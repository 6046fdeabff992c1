"""``ltxic`` command line: one subcommand per step of the course.

Each subcommand is a thin wrapper over the package function of the same name; the logic lives there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_env(args: argparse.Namespace) -> int:
    from ltxic.envcheck import environment_report

    report = environment_report()
    for key, value in report.items():
        print(f"{key:>14}: {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ltxic.demo import run_demo

    run_demo(args.out)
    return 0


def _cmd_validate_config(args: argparse.Namespace) -> int:
    from ltxic.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, check_files=not args.no_check_files)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    buckets = ", ".join(str(b) for b in cfg.dataset.resolution_buckets)
    print(f"{args.config}: ok ({cfg.training_strategy.name}, {cfg.optimization.steps} steps, "
          f"LoRA rank {cfg.lora.rank}, buckets {buckets})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ltxic.trainer import train

    result = train(args.config, resume=args.resume)
    print(f"trained to step {result.step} in {result.seconds:.0f} s; LoRA: {result.lora_path}; metrics: {result.metrics_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltxic", description="Identity IC-LoRAs for LTX-2.3: the course's tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("env", help="print versions, devices and what the course can run here")
    p.set_defaults(func=_cmd_env)

    p = sub.add_parser("demo", help="the main job on the embedded default (tiny model, data_samples/), no downloads")
    p.add_argument("--out", default="outputs/demo", help="where results are written (default: outputs/demo)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("validate-config", help="check a training YAML and list every problem with its fix")
    p.add_argument("config", help="path to the training config (.yaml)")
    p.add_argument("--no-check-files", action="store_true", help="skip checking that input files exist")
    p.set_defaults(func=_cmd_validate_config)

    p = sub.add_parser("train", help="train an IC-LoRA from a YAML config (checkpoints, validation, metrics)")
    p.add_argument("config", help="the training config (see ltxic/configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in output.dir")
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
