"""The tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`), read and write.

GGUF keeps a BPE tokenizer as GPT-2 style data: `tokens` (printable byte-level strings, id =
index), `token_type` (1 normal, 3 control, 4 user-defined, ...), `merges` ("left right"),
`pre` (llama.cpp's pre-tokenizer name), bos/eos ids and `tokenizer.chat_template`. Control and
user-defined tokens become special tokens: matched in text before anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token, token_to_str
from lmforge.tokenizer.core import Tokenizer

# llama.cpp pre-tokenizer name -> (our pattern name, ignore_merges)
PRE_TOKENIZERS: dict[str, tuple[str, bool]] = {
    "default": ("gpt2", False),
    "gpt2": ("gpt2", False),
    "gpt-2": ("gpt2", False),
    "smollm": ("smollm", False),
    "llama-bpe": ("llama3", True),
    "llama3": ("llama3", True),
}
_NORMAL, _CONTROL, _USER_DEFINED = 1, 3, 4


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_gguf_tokenizer(path: str | Path, reader: Any = None) -> Tokenizer:
    """A Tokenizer from the metadata of a GGUF file.

    reader: an open `gguf.GGUFReader` of that file, to skip parsing it again (parsing the
    metadata of a 49k-token vocabulary takes seconds).
    """
    path = Path(path)
    if reader is None:
        from gguf import GGUFReader

        if not path.is_file():
            raise LmforgeError(f"GGUF file not found: {str(path)!r}")
        try:
            reader = GGUFReader(path)
        except Exception as exc:  # gguf raises ValueError, struct errors, ... on a damaged file
            raise LmforgeError(f"corrupt GGUF file {str(path)!r}: {exc}") from None
    source = str(path)
    model = _field(reader, "tokenizer.ggml.model")
    if model is None:
        raise LmforgeError(f"{source}: the GGUF file holds no tokenizer")
    if model != "gpt2":
        raise LmforgeError(
            f"{source}: unsupported GGUF tokenizer model {model!r} (need byte-level BPE 'gpt2')"
        )
    pre = _field(reader, "tokenizer.ggml.pre") or "default"
    if pre not in PRE_TOKENIZERS:
        raise LmforgeError(
            f"{source}: unsupported pre-tokenizer {pre!r} (known: {', '.join(sorted(PRE_TOKENIZERS))})"
        )
    pattern, ignore_merges = PRE_TOKENIZERS[pre]
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges_raw = _field(reader, "tokenizer.ggml.merges") or []
    types = _field(reader, "tokenizer.ggml.token_type") or [_NORMAL] * len(tokens or [])
    if not tokens or len(types) != len(tokens):
        raise LmforgeError(
            f"corrupt GGUF file {source}: missing or inconsistent tokenizer.ggml.tokens"
        )
    vocab: dict[int, bytes] = {}
    specials: dict[str, int] = {}
    try:
        for i, (s, t) in enumerate(zip(tokens, types, strict=True)):
            if t in (_CONTROL, _USER_DEFINED):
                specials[s] = i
            else:
                vocab[i] = str_to_token(s)
        merges = []
        for m in merges_raw:
            a, b = m.split(" ")
            merges.append((str_to_token(a), str_to_token(b)))
    except (KeyError, ValueError) as exc:
        raise LmforgeError(f"corrupt GGUF file {source}: bad token or merge ({exc})") from None
    return Tokenizer(
        vocab,
        merges=merges,
        special_tokens=specials,
        pattern=pattern,
        ignore_merges=ignore_merges,
        bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        chat_template=_field(reader, "tokenizer.chat_template"),
        name=path.stem,
    )


def write_gguf_tokenizer(writer: Any, tok: Tokenizer) -> None:
    """Add `tok` to a `gguf.GGUFWriter`'s metadata (for checkpoint writers)."""
    pre = next((name for name, (pat, _) in PRE_TOKENIZERS.items() if pat == tok.pattern_name), None)
    if pre is None or tok.merges is None:
        raise LmforgeError(
            f"tokenizer {tok.name!r} cannot be stored in GGUF: llama.cpp knows no pre-tokenizer "
            f"for pattern {tok.pattern_name or 'custom'!r}"
            if pre is None
            else f"tokenizer {tok.name!r} has no merge list"
        )
    n = tok.vocab_size
    names: list[str] = []
    types: list[int] = []
    inverse = {i: s for s, i in tok.special_tokens.items()}
    for i in range(n):
        if i in inverse:
            names.append(inverse[i])
            types.append(_CONTROL)
        elif i in tok.vocab:
            names.append(token_to_str(tok.vocab[i]))
            types.append(_NORMAL)
        else:
            names.append(f"[PAD{i}]")
            types.append(5)  # unused
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(names)
    writer.add_token_types(types)
    writer.add_token_merges([f"{token_to_str(a)} {token_to_str(b)}" for a, b in tok.merges])
    if tok.bos_id is not None:
        writer.add_bos_token_id(tok.bos_id)
    if tok.eos_id is not None:
        writer.add_eos_token_id(tok.eos_id)
    if tok.chat_template is not None:
        writer.add_chat_template(tok.chat_template)
