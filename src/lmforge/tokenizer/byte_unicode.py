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


# str.translate tables, so both conversions run at C speed (a GGUF vocabulary and its merges
# are ~150k strings, converted on every model load).
@lru_cache(maxsize=1)
def _to_printable() -> dict[int, str]:
    """Latin-1 character of a byte -> its printable character."""
    return {b: c for b, c in bytes_to_unicode().items()}


@lru_cache(maxsize=1)
def _to_latin1() -> dict[int, str]:
    """Printable character -> the Latin-1 character of its byte; every other character below 256
    (not in the map) -> one that Latin-1 cannot encode, so that it fails like any stranger."""
    table = {ord(c): chr(b) for c, b in unicode_to_bytes().items()}
    for code in range(256):
        table.setdefault(code, _OUTSIDE)
    return table


_OUTSIDE = "\uffff"


def token_to_str(token: bytes) -> str:
    """Raw token bytes -> GPT-2 printable string (b" the" -> "Ġthe")."""
    return token.decode("latin-1").translate(_to_printable())


def str_to_token(text: str) -> bytes:
    """GPT-2 printable string -> raw bytes; KeyError for a character outside the map."""
    try:
        return text.translate(_to_latin1()).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise KeyError(text[exc.start]) from None


def byte_order() -> list[int]:
    """The 256 byte values sorted by their printable character.

    This is the order HF's ByteLevel trainer (and the reference vocabularies) give the initial
    alphabet: "!" first, the remapped control bytes ("Ā" = 0x00, ...) last.
    """
    table = bytes_to_unicode()
    return sorted(range(256), key=lambda b: table[b])
