"""Ranking metrics against hand-computed values (trec_eval conventions)."""

from __future__ import annotations

import math

import pytest

from lmforge.errors import LmforgeError
from lmforge.eval.retrieval_metrics import (
    hit_at_k,
    mean_over_queries,
    mrr,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

L3 = math.log2(3)  # discount at rank 2
L5 = math.log2(5)  # discount at rank 4


def test_binary_relevance_with_unretrieved_relevant_docs():
    qrels = {"a": 1, "b": 1, "c": 1, "n": 0}  # "n" judged non-relevant; "c" is never retrieved
    ranked = ["x", "a", "n", "b"]
    assert recall_at_k(ranked, qrels, 1) == 0.0
    assert recall_at_k(ranked, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, qrels, 10) == pytest.approx(2 / 3)  # c counts in the denominator
    assert precision_at_k(ranked, qrels, 4) == pytest.approx(2 / 4)
    assert precision_at_k(ranked, qrels, 10) == pytest.approx(2 / 10)
    assert mrr(ranked, qrels) == pytest.approx(1 / 2)
    assert mrr(ranked, qrels, 1) == 0.0
    assert hit_at_k(ranked, qrels, 1) == 0.0 and hit_at_k(ranked, qrels, 2) == 1.0
    # DCG@4 = 1/log2(3) + 1/log2(5); ideal over all three relevant docs = 1 + 1/log2(3) + 1/2
    assert ndcg_at_k(ranked, qrels, 4) == pytest.approx((1 / L3 + 1 / L5) / (1 + 1 / L3 + 0.5))
    # at k=2 the ideal list is cut to two documents as well
    assert ndcg_at_k(ranked, qrels, 2) == pytest.approx((1 / L3) / (1 + 1 / L3))


def test_graded_gains():
    qrels = {"d1": 3, "d2": 2, "d3": 1, "d4": 0}
    ranked = ["d4", "d2", "x", "d1"]
    # DCG@3: only d2 (gain 2, rank 2); ideal: 3, 2, 1 at ranks 1-3
    assert ndcg_at_k(ranked, qrels, 3) == pytest.approx((2 / L3) / (3 + 2 / L3 + 1 / 2))
    # DCG@4 adds d1 (gain 3, rank 4); ideal@4 has just the three relevant documents
    assert ndcg_at_k(ranked, qrels, 4) == pytest.approx((2 / L3 + 3 / L5) / (3 + 2 / L3 + 1 / 2))
    assert ndcg_at_k(["d1", "d2", "d3"], qrels, 3) == pytest.approx(1.0)
    # swapping two grades lowers the score: gains are graded, not binary
    assert ndcg_at_k(["d2", "d1", "d3"], qrels, 3) < 1.0
    assert ndcg_at_k(["d2", "d1", "d3"], qrels, 3) == pytest.approx(
        (2 + 3 / L3 + 1 / 2) / (3 + 2 / L3 + 1 / 2)
    )
    assert recall_at_k(ranked, qrels, 4) == pytest.approx(2 / 3)
    assert mrr(ranked, qrels) == pytest.approx(1 / 2)


def test_duplicates_count_once_and_edge_cases():
    qrels = {"a": 2}
    assert ndcg_at_k(["a", "a", "b"], qrels, 3) == pytest.approx(1.0)
    assert recall_at_k(["b", "b", "a"], qrels, 2) == pytest.approx(1.0)  # dedup -> [b, a]
    assert ndcg_at_k([], qrels, 5) == 0.0 and mrr([], qrels) == 0.0
    assert recall_at_k(["a"], {"a": 0}, 1) == 0.0  # no relevant documents: 0, not a crash
    assert ndcg_at_k(["a"], {}, 1) == 0.0
    with pytest.raises(LmforgeError, match="k must be"):
        recall_at_k(["a"], qrels, 0)


def test_mean_over_queries_skips_queries_without_relevant_docs():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    runs = {"q1": ["a"], "q3": ["c"]}  # q2 unanswered -> 0; q3 has no relevant doc -> skipped
    assert mean_over_queries(recall_at_k, runs, qrels, 1) == pytest.approx(0.5)
    assert mean_over_queries(mrr, runs, qrels) == pytest.approx(0.5)
