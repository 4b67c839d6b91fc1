"""GPT-2's original files: `encoder.json` (token string -> id) and `vocab.bpe` (merge list).

The same layout is HF's slow-tokenizer `vocab.json` + `merges.txt`. Token strings use GPT-2's
printable byte map. `<|endoftext|>` sits in encoder.json but is a special token.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token
from lmforge.tokenizer.core import Tokenizer

SPECIALS = ("<|endoftext|>",)


def read_merges_txt(path: Path) -> list[tuple[bytes, bytes]]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LmforgeError(f"cannot read merges file {str(path)!r}: {exc}") from None
    merges = []
    for lineno, line in enumerate(lines, 1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        try:
            if len(parts) != 2:
                raise KeyError
            merges.append((str_to_token(parts[0]), str_to_token(parts[1])))
        except KeyError:
            raise LmforgeError(
                f"corrupt merges file {str(path)!r}: line {lineno} is not two byte-level tokens"
            ) from None
    return merges


def read_vocab_json(
    path: Path, specials: tuple[str, ...]
) -> tuple[dict[int, bytes], dict[str, int]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LmforgeError(f"corrupt vocabulary file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise LmforgeError(f"corrupt vocabulary file {str(path)!r}: expected a JSON object")
    vocab: dict[int, bytes] = {}
    special_tokens: dict[str, int] = {}
    for s, i in data.items():
        if s in specials:
            special_tokens[s] = int(i)
            continue
        try:
            vocab[int(i)] = str_to_token(s)
        except (KeyError, ValueError, TypeError):
            raise LmforgeError(
                f"corrupt vocabulary file {str(path)!r}: {s!r} is not a byte-level token"
            ) from None
    return vocab, special_tokens


def load_gpt2(
    vocab_path: str | Path,
    merges_path: str | Path,
    *,
    pattern: str = "gpt2",
    specials: tuple[str, ...] = SPECIALS,
) -> Tokenizer:
    vocab, special_tokens = read_vocab_json(Path(vocab_path), specials)
    merges = read_merges_txt(Path(merges_path))
    eos = special_tokens.get("<|endoftext|>")
    return Tokenizer(
        vocab,
        merges=merges,
        special_tokens=special_tokens,
        pattern=pattern,
        bos_id=eos,
        eos_id=eos,
        name=Path(vocab_path).stem,
    )
