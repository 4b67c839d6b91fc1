"""lmforge's own tokenizer file, `lmforge_tokenizer.json`.

Everything a Tokenizer holds, in one readable JSON: tokens and merges in GPT-2 printable form
("Ġthe"; never contains a space, so a merge is "left right"), the pre-tokenizer regex and name,
special tokens, bos/eos ids and the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token, token_to_str
from lmforge.tokenizer.core import Tokenizer

FORMAT = "lmforge-bpe"
VERSION = 1
FILENAME = "lmforge_tokenizer.json"


def to_dict(tok: Tokenizer) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": tok.name,
        "pattern_name": tok.pattern_name,
        "pattern": tok.pattern,
        "ignore_merges": tok.ignore_merges and tok.merges is not None,
        "special_tokens": tok.special_tokens,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "chat_template": tok.chat_template,
        "vocab": [[i, token_to_str(t)] for i, t in sorted(tok.vocab.items())],
        "merges": None
        if tok.merges is None
        else [f"{token_to_str(a)} {token_to_str(b)}" for a, b in tok.merges],
    }


def save_native(tok: Tokenizer, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(tok), ensure_ascii=False, indent=0) + "\n", "utf-8")


def from_dict(data: dict[str, Any], source: str) -> Tokenizer:
    if data.get("format") != FORMAT:
        raise LmforgeError(f"{source}: not an lmforge tokenizer file")
    if data.get("version") != VERSION:
        raise LmforgeError(
            f"{source}: unsupported lmforge tokenizer version {data.get('version')!r}"
        )
    try:
        vocab = {int(i): str_to_token(s) for i, s in data["vocab"]}
        merges = None
        if data["merges"] is not None:
            merges = []
            for line in data["merges"]:
                a, b = line.split(" ")
                merges.append((str_to_token(a), str_to_token(b)))
        return Tokenizer(
            vocab,
            merges=merges,
            special_tokens={str(s): int(i) for s, i in data["special_tokens"].items()},
            pattern=data["pattern_name"] or data["pattern"],
            ignore_merges=bool(data.get("ignore_merges", False)),
            bos_id=data.get("bos_id"),
            eos_id=data.get("eos_id"),
            chat_template=data.get("chat_template"),
            name=str(data.get("name") or "lmforge"),
        )
    except LmforgeError as exc:
        raise LmforgeError(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LmforgeError(
            f"corrupt tokenizer file {source}: {type(exc).__name__}: {exc}"
        ) from None
