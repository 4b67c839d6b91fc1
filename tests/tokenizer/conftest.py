"""Fixtures for tokenizer tests: corpus samples, reference tokenizers, generated text."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.assets import DEFAULT_MODEL, resolve_model_path

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
    return resolve_model_path(DEFAULT_MODEL)
