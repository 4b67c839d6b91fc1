"""RAG metrics: statement splitting, ALCE citation scoring, faithfulness, utilisation, refusals."""

from __future__ import annotations

import pytest

from lmforge.eval.judges import OverlapJudge
from lmforge.eval.rag_metrics import (
    citation_scores,
    context_utilisation,
    faithfulness,
    looks_like_refusal,
    refusal_correct,
    split_statements,
)
from lmforge.eval.results import latency_summary, percentile


class KeywordJudge:
    """Supports a statement when the premise holds every keyword the statement is tagged with."""

    def __init__(self, needs: dict[str, set[str]]) -> None:
        self.needs = needs
        self.calls = 0

    def supports_batch(self, pairs):
        self.calls += len(pairs)
        return [all(k in premise for k in self.needs[statement]) for premise, statement in pairs]


def test_split_statements_and_markers():
    answer = (
        "Paris is the capital [1]. It has 2 million people [1][2].\nThe Seine flows through it. [3]"
    )
    st = split_statements(answer)
    assert [s.text for s in st] == [
        "Paris is the capital.",
        "It has 2 million people.",
        "The Seine flows through it.",
    ]
    assert [s.citations for s in st] == [[1], [1, 2], [3]]
    assert split_statements("  ") == []
    assert split_statements("See [1, 2].")[0].citations == [1, 2]


def test_alce_citation_recall_and_precision():
    passages = {1: "alpha", 2: "beta", 3: "gamma delta"}
    s = [
        # joint support from 1+2, and each is needed -> recall 1, both citations precise
        ("A needs alpha and beta [1][2].", {"alpha", "beta"}),
        # supported by 3 alone; 1 is superfluous (3 alone suffices) -> recall 1, 1 of 2 precise
        ("B needs gamma [3][1].", {"gamma"}),
        # single citation that does not support -> recall 0, citation imprecise
        ("C needs delta [2].", {"delta"}),
        # no citation -> recall 0, no citation counted
        ("D needs alpha.", {"alpha"}),
    ]
    answer = " ".join(text for text, _ in s)
    statements = split_statements(answer)
    judge = KeywordJudge({st.text: needs for st, (_, needs) in zip(statements, s, strict=True)})
    recall, precision = citation_scores(statements, passages, judge)
    assert recall == pytest.approx(2 / 4)
    assert precision == pytest.approx((2 + 1 + 0) / 5)
    # citing a passage that was not retrieved is unsupported
    st = split_statements("Needs alpha [9].")
    judge = KeywordJudge({st[0].text: {"alpha"}})
    assert citation_scores(st, passages, judge) == (0.0, 0.0)
    assert citation_scores([], passages, judge) == (None, None)


def test_faithfulness_and_utilisation():
    contexts = ["The Eiffel Tower is in Paris.", "Bananas are yellow.", "Unrelated text."]
    statements = split_statements(
        "The Eiffel Tower is in Paris [1]. Bananas are yellow. Cats rule Mars."
    )
    judge = OverlapJudge()
    assert faithfulness(statements, contexts, judge) == pytest.approx(2 / 3)
    # chunk 1 cited, chunk 2 supports a statement, chunk 3 unused
    assert context_utilisation(statements, contexts, {1}, judge) == pytest.approx(2 / 3)
    assert faithfulness([], contexts, judge) is None
    assert context_utilisation(statements, [], set(), judge) is None


def test_overlap_judge():
    judge = OverlapJudge(threshold=0.6)
    assert judge.supports_batch([("Denver Broncos won Super Bowl 50.", "The Broncos won.")]) == [
        True
    ]
    assert judge.supports_batch(
        [("Denver Broncos won Super Bowl 50.", "Panthers lost badly.")]
    ) == [False]


def test_refusals():
    assert looks_like_refusal("I don't know based on the provided documents.")
    assert looks_like_refusal("The context does not mention this.")
    assert not looks_like_refusal("The Broncos won Super Bowl 50 [1].")
    assert refusal_correct(unanswerable=True, refused=True)
    assert not refusal_correct(unanswerable=False, refused=True)
    assert not refusal_correct(unanswerable=True, refused=False)


def test_latency_percentiles_match_numpy():
    import numpy as np

    values = [12.0, 3.5, 7.25, 100.0, 55.0, 9.0, 1.0]
    for q in (50, 95, 99):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    lat = latency_summary(values)
    assert lat["latency_p50_ms"] == pytest.approx(9.0)
