"""Generated text for tokenizer tests (hypothesis strategies and fixed alphabets)."""

from __future__ import annotations

from hypothesis import strategies as st


def _chars(*ranges: tuple[int, int]) -> list[str]:
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)]


# Characters assigned in Unicode for a long time, so every regex engine (Python `regex`, Rust
# `fancy-regex` in tiktoken, Oniguruma in HF tokenizers) classifies them the same way.
ALPHABET = (
    _chars((0x20, 0x7E))  # ASCII
    + list("\t\n\r\x0b\x0c\u00a0\u2003\u3000")  # whitespace
    + _chars((0xC0, 0xFF), (0x391, 0x3C9), (0x410, 0x44F))  # Latin-1, Greek, Cyrillic letters
    + _chars((0x300, 0x36F))  # combining marks
    + _chars((0x4E00, 0x4E80), (0x3041, 0x3096), (0xAC00, 0xAC40))  # CJK, hiragana, hangul
    + _chars((0x1F600, 0x1F64F), (0x1F300, 0x1F320))  # emoji
    + _chars((0x660, 0x669), (0xFF10, 0xFF19))  # Arabic-Indic and fullwidth digits
    + ["²", "½", "Ⅻ", "'s", "'ll", "'VE", "  ", "    ", "\n\n", " 123", "2024", "\r\n"]
)


def unicode_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Text mixing scripts, emoji, combining marks, whitespace runs, digits and contractions."""
    return st.lists(st.sampled_from(ALPHABET), max_size=max_size).map("".join)
