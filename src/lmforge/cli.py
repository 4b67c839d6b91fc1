"""The `lmforge` command: parses arguments and calls the library.

Each room that offers commands has a ``cli`` module with ``register(subparsers)``; it adds its
sub-commands and sets ``func`` on each parser. This module only wires them together and turns
user errors into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Rooms whose `cli` module registers sub-commands, in the order `--help` lists them.
COMMAND_MODULES = [
    "lmforge.tokenizer.cli",
    "lmforge.rag.cli",
    "lmforge.data.cli",
    "lmforge.train.cli",
    "lmforge.eval.cli",
    "lmforge.generate.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Train, run, align, serve and evaluate language models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lmforge.errors import LmforgeError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except LmforgeError as exc:
        print(f"lmforge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lmforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(result or 0)


def _version() -> str:
    from lmforge import __version__

    return f"lmforge {__version__}"


if __name__ == "__main__":
    sys.exit(main())
