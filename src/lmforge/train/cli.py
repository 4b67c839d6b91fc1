"""`lmforge train CONFIG.toml [--out DIR] [--set key=value ...]` (also under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a TOML recipe",
        description="Train a transformer from a TOML recipe (see configs/); the recipe's "
        "train.objective says what is minimised (default: pretrain). Under "
        "`torchrun --nproc_per_node=N` the same command trains data-parallel (DDP, or FSDP with "
        "--set dist.strategy=fsdp). Re-running with the same --out resumes from its checkpoint.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="training recipe")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set optim.lr=3e-3 --set data.path=FILE")  # fmt: skip
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from lmforge.train.config import load_config
    from lmforge.train.run import train

    cfg = load_config(args.config, args.overrides)
    if args.fresh:
        cfg.train.resume = False
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    result = train(cfg, out)
    summary = f"done: step {result.step}"
    if result.train_loss is not None:
        summary += f", train loss {result.train_loss:.4f}"
    if result.val_loss is not None:
        summary += f", val loss {result.val_loss:.4f}"
    print(f"{summary}, {result.elapsed_s:.1f} s; wrote {out}")
    return 0
