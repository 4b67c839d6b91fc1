"""GPT-2's reversible byte <-> printable-character map.

GPT-2's encoder.json, HF tokenizer.json and GGUF store byte-level tokens as strings where every
byte is replaced by a printable character (space -> "Ġ", newline -> "Ċ"). This module converts
between those strings and raw bytes.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Byte value -> printable character, exactly as GPT-2's encoder.py defines it."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


@lru_cache(maxsize=1)
def _encode_table() -> list[str]:
    table = bytes_to_unicode()
    return [table[b] for b in range(256)]


def token_to_str(token: bytes) -> str:
    """Raw token bytes -> GPT-2 printable string (b" the" -> "Ġthe")."""
    table = _encode_table()
    return "".join(table[b] for b in token)


def str_to_token(text: str) -> bytes:
    """GPT-2 printable string -> raw bytes; KeyError for a character outside the map."""
    table = unicode_to_bytes()
    return bytes(table[c] for c in text)


def byte_order() -> list[int]:
    """The 256 byte values sorted by their printable character.

    This is the order HF's ByteLevel trainer (and the reference vocabularies) give the initial
    alphabet: "!" first, the remapped control bytes ("Ā" = 0x00, ...) last.
    """
    table = bytes_to_unicode()
    return sorted(range(256), key=lambda b: table[b])
