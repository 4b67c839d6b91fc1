"""Pre-tokenizer patterns: SmolLM2's "smollm" equals HF's Digits + ByteLevel pipeline, and
pattern names resolve (or fail) clearly."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from tokenizers import pre_tokenizers

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token
from lmforge.tokenizer.patterns import PATTERNS, SMOLLM, resolve_pattern

from .helpers import unicode_text

_SMOLLM_HF = pre_tokenizers.Sequence(
    [
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ]
)


def _hf_pieces(text: str) -> list[str]:
    return [str_to_token(p).decode("utf-8") for p, _ in _SMOLLM_HF.pre_tokenize_str(text)]


@pytest.mark.parametrize(
    "text",
    [
        "abc 123 4x",
        "  1",
        "a  22\n 3",
        "x = 10**6  # 1e-9",
        "I'm 25, it's 2024.",
        " \t 7\n\n8 ",
        "½ and ² and Ⅻ",
    ],
)
def test_smollm_pattern_examples(text: str) -> None:
    assert regex.findall(SMOLLM, text) == _hf_pieces(text)


@settings(max_examples=150, deadline=None)
@given(text=unicode_text(80))
def test_smollm_pattern_equals_hf_digits_then_bytelevel(text: str) -> None:
    assert regex.findall(SMOLLM, text) == _hf_pieces(text)


def test_resolve_pattern() -> None:
    assert resolve_pattern("gpt4") == (PATTERNS["gpt4"], "gpt4")
    assert resolve_pattern(PATTERNS["o200k"]) == (PATTERNS["o200k"], "o200k")
    assert resolve_pattern(r"\w+|\s+") == (r"\w+|\s+", None)
    with pytest.raises(LmforgeError, match="unknown pattern name 'gpt3'"):
        resolve_pattern("gpt3")
    with pytest.raises(LmforgeError, match="invalid pre-tokenizer regex"):
        resolve_pattern("(?<bad")


def test_byte_unicode_map_round_trips_every_byte_and_rejects_strangers() -> None:
    """The translate-table conversions agree with GPT-2's map, character by character."""
    from lmforge.tokenizer.byte_unicode import bytes_to_unicode, token_to_str

    table = bytes_to_unicode()
    every = bytes(range(256))
    assert token_to_str(every) == "".join(table[b] for b in every)
    assert str_to_token(token_to_str(every * 2)) == every * 2
    for stranger in (" ", "\x00", "€", "Ġa\x7f"):  # space and DEL are remapped, € is outside
        with pytest.raises(KeyError):
            str_to_token(stranger)
