"""The `lmforge` command: parses arguments and calls the library.

Each room that offers commands has a ``cli`` module with ``register(subparsers)``; it adds its
sub-commands and sets ``func`` on each parser. This module only wires them together and turns
user errors into one line on stderr with a non-zero exit.

Only the room of the chosen command is imported: `lmforge --help` lists the commands from the
table below, and `lmforge tokenizer ...` never loads the rooms that need torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (command, module that registers it, help shown by `lmforge --help`), in the order listed.
# The help must be the one the module gives (tests/test_cli_startup.py checks both).
COMMANDS = [
    ("tokenizer", "lmforge.tokenizer.cli", "train, run and inspect byte-level BPE tokenizers"),
    ("index", "lmforge.rag.cli", "ingest documents into a store (incremental)"),
    ("ask", "lmforge.rag.cli", "answer a question from a store, with citations"),
    ("data", "lmforge.data.cli", "prepare training data (clean, dedup, tokenize)"),
    ("train", "lmforge.train.cli", "train a model from a TOML recipe"),
    ("eval", "lmforge.eval.cli", "evaluate models: benchmarks, perplexity, RAG; compare runs"),
    ("generate", "lmforge.generate.cli", "continue a prompt with a language model"),
    ("chat", "lmforge.generate.cli", "interactive chat (/reset clears, /exit quits)"),
]

# The rooms whose commands this `lmforge` offers (a room's own `python -m` entry narrows it).
COMMAND_MODULES = list(dict.fromkeys(module for _, module, _ in COMMANDS))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of `lmforge`, with the full sub-parsers of `command`'s room only (all rooms'
    when `command` is not in the table); the other commands are listed by name and help."""
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Train a tokenizer, prepare data, pretrain, generate, answer from "
        "documents with citations, and evaluate language models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    offered = [row for row in COMMANDS if row[1] in COMMAND_MODULES]
    owner = next((module for name, module, _ in offered if name == command), None)
    if owner is not None:
        load = {owner}
    elif command is None:
        load = set()  # --help, --version: names and help suffice
    else:
        load = set(COMMAND_MODULES)  # no such command: argparse lists the real choices
    for name, module, help_text in offered:
        if name in subparsers.choices:
            continue  # registered with an earlier command of its room
        if module in load:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    # A room not in the table (a room's own `python -m` entry may name one) always registers.
    listed = {module for _, module, _ in COMMANDS}
    for module in COMMAND_MODULES:
        if module not in listed:
            importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lmforge.errors import LmforgeError

    argv = sys.argv[1:] if argv is None else list(argv)
    # Top-level options take no value, so the first word that is not one is the command.
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
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
