"""Fixtures for generation tests (the helpers live in tests/model_helpers.py)."""

from __future__ import annotations

import pytest

from lmforge.model import Transformer
from lmforge.tokenizer import Tokenizer
from model_helpers import byte_tokenizer, tiny_model


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return byte_tokenizer()


@pytest.fixture(scope="module")
def model() -> Transformer:
    return tiny_model()
