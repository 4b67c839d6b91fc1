"""Ranking metrics with trec_eval's conventions.

Every function takes the ranked document ids a system returned (best first), the judgements for
the query (``qrels``: document id -> relevance grade; unjudged documents count as non-relevant)
and a cutoff ``k``. As in trec_eval:

- a document is *relevant* when its grade is > 0 (trec_eval's default ``relevance_level`` 1);
- nDCG uses the grades themselves as gains (linear gain, trec_eval ``ndcg_cut``) with the
  discount 1/log2(rank + 1); the *ideal* DCG is built from **all** judged relevant documents of
  the query, including those the system never retrieved, so missing them costs score;
- recall divides by the number of all judged relevant documents, retrieved or not;
- MRR (trec_eval ``recip_rank``) is 1/rank of the first relevant document, 0 when none is
  retrieved within the cutoff.

A document repeated in the ranking counts once, at its first position. A query without any
relevant judgement scores 0.0 on every metric; trec_eval leaves such queries out of its means,
and so does ``mean_over_queries``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from lmforge.errors import LmforgeError

Qrels = Mapping[str, float]


def _check_k(k: int | None) -> None:
    if k is not None and k < 1:
        raise LmforgeError(f"cutoff k must be >= 1, got {k}")


def _top(ranked_ids: Sequence[str], k: int | None) -> list[str]:
    """The first k distinct ids of the ranking (all of them when k is None)."""
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked_ids:
        if doc_id in seen:
            continue
        seen.add(doc_id)
        top.append(doc_id)
        if k is not None and len(top) == k:
            break
    return top


def _n_relevant(qrels: Qrels) -> int:
    return sum(1 for grade in qrels.values() if grade > 0)


def recall_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int) -> float:
    """Share of the query's relevant documents that appear in the top k."""
    _check_k(k)
    total = _n_relevant(qrels)
    if total == 0:
        return 0.0
    hits = sum(1 for doc_id in _top(ranked_ids, k) if qrels.get(doc_id, 0) > 0)
    return hits / total


def precision_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int) -> float:
    """Relevant documents in the top k, divided by k (trec_eval P_k: missing ranks count as misses)."""
    _check_k(k)
    hits = sum(1 for doc_id in _top(ranked_ids, k) if qrels.get(doc_id, 0) > 0)
    return hits / k


def hit_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int) -> float:
    """1.0 if any relevant document is in the top k (success@k)."""
    _check_k(k)
    return float(any(qrels.get(doc_id, 0) > 0 for doc_id in _top(ranked_ids, k)))


def mrr(ranked_ids: Sequence[str], qrels: Qrels, k: int | None = None) -> float:
    """Reciprocal rank of the first relevant document within the top k (whole ranking if None)."""
    _check_k(k)
    for rank, doc_id in enumerate(_top(ranked_ids, k), start=1):
        if qrels.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def _dcg(gains: Iterable[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int) -> float:
    """Normalised discounted cumulative gain at k with graded (linear) gains."""
    _check_k(k)
    gains = [max(float(qrels.get(doc_id, 0)), 0.0) for doc_id in _top(ranked_ids, k)]
    ideal = sorted((float(g) for g in qrels.values() if g > 0), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    if ideal_dcg == 0.0:
        return 0.0
    return _dcg(gains) / ideal_dcg


def mean_over_queries(
    metric,
    runs: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Qrels],
    k: int | None = None,
) -> float:
    """Mean of ``metric(ranked, qrels[q], k)`` over queries that have a relevant judgement.

    Queries in ``qrels`` that the run does not answer count as empty rankings (score 0), like
    trec_eval with ``-c``; queries without relevant documents are skipped.
    """
    scores = []
    for query_id, judgements in qrels.items():
        if _n_relevant(judgements) == 0:
            continue
        ranked = runs.get(query_id, [])
        scores.append(
            metric(ranked, judgements, k) if k is not None else metric(ranked, judgements)
        )
    return sum(scores) / len(scores) if scores else 0.0
