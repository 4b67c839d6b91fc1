"""lmforge's own tokenizer file, `lmforge_tokenizer.json`.

Everything a Tokenizer holds, in one readable JSON: tokens and merges in GPT-2 printable form
("Ġthe"; never contains a space, so a merge is "left right"), the pre-tokenizer regex and name,
special tokens, bos/eos ids and the chat template.
"""

from __future__ import annotations

from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token
from lmforge.tokenizer.core import Tokenizer
from lmforge.tokenizer.save import NATIVE_FORMAT as FORMAT
from lmforge.tokenizer.save import NATIVE_VERSION as VERSION


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
