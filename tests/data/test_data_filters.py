"""Gopher-style quality rules: each fires on a document built to break it; real prose passes."""

from __future__ import annotations

import json

import pytest

from lmforge.data.filters import FilterConfig, QualityFilter, normalize_text


@pytest.fixture(scope="module")
def prose(shared_data) -> str:
    d = json.loads((shared_data / "xquad-en" / "xquad.en.json").read_text())
    return d["data"][0]["paragraphs"][0]["context"]


def test_real_prose_passes(prose):
    assert QualityFilter(FilterConfig(min_words=20)).check(prose) is None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: "", "empty"),
        (lambda p: "too short to be a document", "too_few_words"),
        (lambda p: " ".join(["a"] * 80), "mean_word_length"),
        (lambda p: " ".join(w * 4 for w in p.split()), "mean_word_length"),
        (lambda p: " ".join(w + "#" for w in p.split()), "symbol_ratio"),
        (
            lambda p: "\n".join("• " + w + " interception statistics" for w in p.split()[:60]),
            "bullet_lines",
        ),
        (
            lambda p: "\n".join(s.strip() + "..." for s in p.split(".") if s.strip()),
            "ellipsis_lines",
        ),
        (lambda p: " ".join(str(i * 7919) for i in range(100)) + " " + p[:200], "alpha_words"),
        (lambda p: "\n".join([p[:120]] * 4 + [p]), "dup_lines"),
        (lambda p: p + " " + " ".join(["buy cheap pills now"] * 30), "top_3gram"),
    ],
)
def test_rule_fires(prose, make, reason):
    text = make(prose)
    assert QualityFilter(FilterConfig(min_words=20)).check(text) == reason


def test_duplicated_ngrams(prose):
    # the whole paragraph twice in one line: no duplicate line, but every 5-gram repeats
    text = prose + " " + prose
    got = QualityFilter(FilterConfig(min_words=20)).check(text)
    assert got is not None and ("gram" in got)


def test_rules_can_be_switched_off(prose):
    text = "\n".join([prose[:120]] * 4 + [prose])
    assert QualityFilter(FilterConfig.disabled()).check(text) is None
    assert QualityFilter(FilterConfig.disabled()).check("   ") == "empty"


def test_normalize_text():
    assert normalize_text("e\u0301\r\nx") == "\u00e9\nx"
    assert normalize_text("ﬁ", "NFKC") == "fi"
    assert normalize_text("ﬁ", "none") == "ﬁ"
