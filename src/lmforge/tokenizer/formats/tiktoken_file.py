"""`.tiktoken` files: one "base64(token) rank" per line (tiktoken's published vocabularies).

The file holds neither the pre-tokenizer nor the special tokens; for OpenAI's published files
they follow from the file name, as in tiktoken_ext.openai_public.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.tokenizer.core import Tokenizer

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

# file stem -> (pattern name, special tokens)
KNOWN: dict[str, tuple[str, dict[str, int]]] = {
    "gpt2": ("gpt2", {ENDOFTEXT: 50256}),
    "r50k_base": ("gpt2", {ENDOFTEXT: 50256}),
    "p50k_base": ("gpt2", {ENDOFTEXT: 50256}),
    "cl100k_base": (
        "gpt4",
        {
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": ("o200k", {ENDOFTEXT: 199999, ENDOFPROMPT: 200018}),
}


_BASE64_AND_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n"


def read_ranks(path: str | Path) -> dict[bytes, int]:
    """Token bytes -> rank, with a clear error for a corrupt file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LmforgeError(f"cannot read tokenizer file {str(path)!r}: {exc.strerror}") from None
    # A file holds 100k-200k lines: read them in one comprehension when every byte is base64,
    # a digit or a separator (so decoding without validation loses nothing), and go line by
    # line, naming the bad line, only when that fails.
    try:
        if data.translate(None, _BASE64_AND_DIGITS):
            raise ValueError("unexpected bytes")
        decode = binascii.a2b_base64
        # A blank line or one without exactly two fields fails to unpack: the slow reader.
        ranks = {decode(token): int(rank) for token, rank in map(bytes.split, data.splitlines())}
    except (ValueError, binascii.Error):
        ranks = _read_ranks_line_by_line(data, path)
    if not ranks:
        raise LmforgeError(f"corrupt tiktoken file {str(path)!r}: no tokens")
    if len(set(ranks.values())) != len(ranks):
        raise LmforgeError(f"corrupt tiktoken file {str(path)!r}: duplicate ranks")
    return ranks


def _read_ranks_line_by_line(data: bytes, path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise LmforgeError(
                f"corrupt tiktoken file {str(path)!r}: line {lineno} is not 'base64 rank'"
            ) from None
    return ranks


def load_tiktoken(
    path: str | Path,
    *,
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
) -> Tokenizer:
    """A Tokenizer from a .tiktoken file (rank semantics, ids = ranks)."""
    path = Path(path)
    stem = path.name.removesuffix(".tiktoken")
    known_pattern, known_specials = KNOWN.get(stem, (None, {}))
    pattern = pattern or known_pattern
    if pattern is None:
        raise LmforgeError(
            f"cannot tell the pre-tokenizer of {str(path)!r}: name the file like one of "
            f"{', '.join(k + '.tiktoken' for k in KNOWN)} or give a pattern"
        )
    ranks = read_ranks(path)
    specials = known_specials if special_tokens is None else special_tokens
    eos = specials.get(ENDOFTEXT)
    return Tokenizer(
        {r: t for t, r in ranks.items()},
        merges=None,
        special_tokens=specials,
        pattern=pattern,
        eos_id=eos,
        name=stem,
    )


def save_tiktoken(tok: Tokenizer, path: str | Path) -> None:
    """Write a .tiktoken file; only for rank-semantics tokenizers (ids are ranks)."""
    if tok.merges is not None:
        raise LmforgeError(
            "a .tiktoken file stores rank semantics only; this tokenizer uses a merge list "
            "(save it as tokenizer.json instead)"
        )
    lines = [f"{base64.b64encode(t).decode()} {i}" for i, t in sorted(tok.vocab.items())]
    Path(path).write_text("\n".join(lines) + "\n", "ascii")
