"""`lmforge tokenizer train|encode|decode|info`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lmforge.errors import LmforgeError
from lmforge.tokenizer.patterns import PATTERNS

_BLOCK = 1 << 20  # bytes of input per call into the encoder (whole lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenizer",
        help="train, run and inspect byte-level BPE tokenizers",
        description="Train, run and inspect byte-level BPE tokenizers.",
    )
    sub = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train a byte-level BPE tokenizer on text files",
        description="Train a byte-level BPE tokenizer. DIR receives tokenizer.json (HF format, "
        "loadable by the tokenizers library), tokenizer_config.json and lmforge_tokenizer.json.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="UTF-8 text files (invalid bytes are kept as bytes)",
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        required=True,
        metavar="N",
        help="final vocabulary size, specials included",
    )
    p.add_argument(
        "--pattern",
        default="gpt2",
        metavar="NAME",
        help=f"pre-tokenizer: {', '.join(PATTERNS)}, or a regex (default: gpt2)",
    )
    p.add_argument(
        "--special",
        nargs="*",
        default=[],
        metavar="TOKEN",
        help="special tokens, e.g. '<|endoftext|>'",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--min-frequency",
        type=int,
        default=1,
        metavar="N",
        help="stop when the best pair is rarer (default: 1)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="pre-tokenization processes (default: all cores)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "encode",
        help="print the token ids of each input line",
        description="Print the token ids of each input line, space separated, one output line "
        "per input line (the newline itself is not encoded).",
    )
    _add_tokenizer_args(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="input text (default: stdin)")
    p.add_argument(
        "--allowed-special",
        choices=["all", "none", "none_raise"],
        default="all",
        help="special token strings in the text: 'all' encodes them as special tokens "
        "(default), 'none' as ordinary text, 'none_raise' makes them an error",
    )
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode",
        help="turn lines of space-separated token ids back into text",
        description="Decode each input line of space-separated token ids into one line of text.",
    )
    _add_tokenizer_args(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="input ids (default: stdin)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="describe a tokenizer", description="Describe a tokenizer.")
    _add_tokenizer_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)


def _add_tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer",
        "-t",
        required=True,
        metavar="T",
        help="trained tokenizer directory, tokenizer.json, .tiktoken file or GGUF file",
    )
    p.add_argument(
        "--pattern",
        default=None,
        metavar="NAME",
        help="pre-tokenizer of a .tiktoken file whose name does not tell it",
    )
    p.add_argument(
        "--backend", choices=["fast", "python"], default="fast", help="encoder (default: fast)"
    )


def _load(args: argparse.Namespace):
    from lmforge.tokenizer import load_tokenizer

    return load_tokenizer(args.tokenizer, pattern=args.pattern, backend=args.backend)


def cmd_train(args: argparse.Namespace) -> int:
    from lmforge.tokenizer import train_bpe

    tok = train_bpe(
        args.files,
        args.vocab_size,
        pattern=args.pattern,
        special_tokens=args.special,
        min_frequency=args.min_frequency,
        workers=args.workers,
        progress=False if args.no_progress else None,  # None: bars when stderr is a terminal
        name=Path(args.out).name or "lmforge",
    )
    tok.save(args.out)
    n_merges = len(tok.merges or [])
    print(
        f"trained {tok.vocab_size} tokens ({n_merges} merges, {len(tok.special_tokens)} special) "
        f"-> {args.out}",
        file=sys.stderr,
    )
    return 0


def _open_input(path: str | None) -> BinaryIO:
    if path is None or path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise LmforgeError(f"cannot read input file {path!r}: {exc.strerror}") from None


def _lines(fh: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line without its newline; bad UTF-8 is replaced, with one
    warning."""
    warned = False
    for lineno, raw in enumerate(fh, 1):
        raw = raw.removesuffix(b"\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            if not warned:
                print(
                    f"lmforge: warning: {name} line {lineno}: invalid UTF-8 replaced by U+FFFD",
                    file=sys.stderr,
                )
                warned = True
        yield lineno, text


def _line_blocks(fh: BinaryIO, name: str) -> Iterator[str]:
    """The input as blocks of whole lines (about _BLOCK bytes), decoded, each without its last
    newline; bad UTF-8 is replaced by U+FFFD, with one warning naming the first bad line."""
    rest = b""
    first_line = 1  # number of the block's first line, for the warning
    warned = False
    while True:
        chunk = fh.read(_BLOCK)
        data = rest + chunk if rest else chunk
        if not chunk:
            cut = len(data)  # the last line has no newline
            if not data:
                return
        else:
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
        block, rest = data[:cut], data[cut + 1 :]
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = block.decode("utf-8", errors="replace")
            if not warned:
                lineno = first_line + block.count(b"\n", 0, exc.start)
                print(
                    f"lmforge: warning: {name} line {lineno}: invalid UTF-8 replaced by U+FFFD",
                    file=sys.stderr,
                )
                warned = True
        yield text
        if not chunk:
            return
        first_line += block.count(b"\n") + 1


def cmd_encode(args: argparse.Namespace) -> int:
    tok = _load(args)
    fh = _open_input(args.file)
    name = args.file or "stdin"
    # The text of every id followed by a space, made once, and a newline for the id that ends
    # a line in encode_lines_flat (vocab_size): one join per block, no work per line.
    words = [f"{i} " for i in range(tok.vocab_size)]
    words.append("\n")
    word = words.__getitem__
    out = sys.stdout
    try:
        for block in _line_blocks(fh, name):
            ids = tok.encode_lines_flat(block, args.allowed_special)
            out.write("".join(map(word, ids)).replace(" \n", "\n").removesuffix(" ") + "\n")
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    out.flush()
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    tok = _load(args)
    fh = _open_input(args.file)
    name = args.file or "stdin"
    try:
        for lineno, text in _lines(fh, name):
            try:
                ids = [int(x) for x in text.split()]
            except ValueError:
                raise LmforgeError(
                    f"{name} line {lineno}: expected space-separated token ids"
                ) from None
            try:
                sys.stdout.write(tok.decode(ids) + "\n")
            except LmforgeError as exc:
                raise LmforgeError(f"{name} line {lineno}: {exc}") from None
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    sys.stdout.flush()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    tok = _load(args)
    info = {
        "name": tok.name,
        "vocab_size": tok.vocab_size,
        "pattern": tok.pattern_name or tok.pattern,
        "merges": None if tok.merges is None else len(tok.merges),
        "semantics": "rank table (tiktoken)" if tok.merges is None else "merge list",
        "ignore_merges": tok.ignore_merges,
        "special_tokens": tok.special_tokens,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "chat_template": tok.chat_template is not None,
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if key == "special_tokens":
            shown = ", ".join(f"{s}={i}" for s, i in list(value.items())[:20])
            value = f"{len(value)}" + (
                f" ({shown}{', ...' if len(value) > 20 else ''})" if value else ""
            )
        print(f"{key:<{width}}  {value}")
    return 0
