"""Pure functions over ranked lists: reciprocal rank fusion, MMR, near-duplicate collapsing."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(d) = sum over lists of 1 / (k + rank(d)), ranks from 1.

    (Cormack, Clarke and Buettcher, 2009.) Ties keep the order of first appearance.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def maximal_marginal_relevance(
    query: np.ndarray, candidates: np.ndarray, k: int, lambda_: float = 0.7
) -> list[int]:
    """Indices of ``k`` candidates picked greedily for relevance minus redundancy.

    Each step takes argmax of lambda * sim(q, c) - (1 - lambda) * max sim(c, picked). Rows are unit
    vectors, so dot products are cosines.
    """
    n = len(candidates)
    if n == 0:
        return []
    relevance = candidates @ query  # [n]
    similarity = candidates @ candidates.T  # [n, n]
    picked: list[int] = []
    redundancy = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        score = lambda_ * relevance - (1 - lambda_) * np.where(
            np.isinf(redundancy), 0.0, redundancy
        )
        score[~available] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return picked


def _shingles(text: str, n: int = 3) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def near_duplicate_groups(
    texts: Sequence[str],
    vectors: np.ndarray | None = None,
    jaccard: float = 0.8,
    cosine: float = 0.97,
) -> list[int]:
    """For each text, the index of the first earlier text it nearly duplicates (or itself).

    Two chunks are near duplicates when their word 3-gram sets overlap by ``jaccard`` or more, or
    their embeddings have cosine ``cosine`` or more. Earlier (better ranked) texts win.
    """
    shingles = [_shingles(t) for t in texts]
    owner = list(range(len(texts)))
    for i in range(len(texts)):
        for j in range(i):
            if owner[j] != j:
                continue
            a, b = shingles[i], shingles[j]
            overlap = len(a & b) / max(1, len(a | b))
            if overlap >= jaccard or (
                vectors is not None and float(vectors[i] @ vectors[j]) >= cosine
            ):
                owner[i] = j
                break
    return owner
