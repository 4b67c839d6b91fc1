"""Text files in whatever encoding they were written: UTF-8 first, then detection.

Documents written by older tools or on Windows are Latin-1, Windows-1252 or UTF-16; refusing
them loses documents, guessing badly garbles them. The order: a byte-order mark decides; valid
UTF-8 is UTF-8; bytes with NULs and no BOM are binary; anything else goes to `charset-normalizer`
(the detector `requests` uses), and only bytes that decode as no plausible text are refused
(`looks_like_text`).
"""

from __future__ import annotations

import codecs
import unicodedata

from lmforge.errors import LmforgeError

_BOMS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Western European text decodes identically under several single-byte code pages, and a short
# sample cannot tell them apart. Among equally good readings Windows-1252 is the one such files
# are in practice (WHATWG makes it the default for Latin-1 labels too).
_PREFERRED = "cp1252"


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding) of a text file's bytes; `LmforgeError` naming ``name`` if not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding.removesuffix("-sig")
            except UnicodeDecodeError as exc:
                raise LmforgeError(f"{name}: not {encoding} text (byte {exc.start})") from exc
    if b"\x00" in data[:8192]:
        raise LmforgeError(f"{name}: binary file, not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = detect_encoding(data)
    text = data.decode(encoding) if encoding else ""
    if encoding is None or not looks_like_text(text):
        raise LmforgeError(f"{name}: undecodable: not UTF-8, and no text encoding fits its bytes")
    return text, encoding


def looks_like_text(text: str) -> bool:
    """Whether decoded text reads as text. The detector finds some code page for random bytes too
    (and reports no "chaos" for them); they come out full of control characters, or of arrows and
    box drawing. Text has at most a few: here under 1% controls and 10% non-ASCII symbols."""
    controls = symbols = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "C" and ch not in "\t\n\r\f\v":
            controls += 1
        elif category[0] == "S" and ord(ch) > 127:
            symbols += 1
    return controls <= len(text) // 100 and symbols <= len(text) // 10


def detect_encoding(data: bytes) -> str | None:
    """The most plausible encoding of bytes that are not UTF-8, or None if none is plausible."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    if any(_PREFERRED in m.could_be_from_charset for m in tied):
        return _PREFERRED
    return best.encoding
