"""Exact and near-duplicate removal on real text (XQuAD paragraphs) with planted near copies."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from lmforge.data.dedup import (
    ExactDeduplicator,
    MinHasher,
    MinHashLSH,
    exact_hash,
    optimal_bands,
    shingle_hashes,
)


@pytest.fixture(scope="module")
def paragraphs(shared_data) -> list[str]:
    d = json.loads((shared_data / "xquad-en" / "xquad.en.json").read_text())
    return [p["context"] for a in d["data"] for p in a["paragraphs"]]


def true_jaccard(a: str, b: str, ngram: int = 5) -> float:
    sa, sb = set(shingle_hashes(a, ngram).tolist()), set(shingle_hashes(b, ngram).tolist())
    return len(sa & sb) / len(sa | sb)


def perturb(text: str, rng: random.Random, rate: float) -> str:
    """Swap a share of the words for other words (typos, edits, boilerplate changes)."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, int(rate * len(words)))):
        words[i] = rng.choice(["the", "a", "of", "and", "edited", "new"])
    return " ".join(words)


def test_exact_dedup_uses_digests():
    d = ExactDeduplicator()
    assert not d.seen(exact_hash("hello world"))
    assert d.seen(exact_hash("hello world"))
    assert not d.seen(exact_hash("hello world!"))
    assert len(d) == 2


def test_minhash_estimates_jaccard(paragraphs):
    mh = MinHasher(num_perm=256)
    rng = random.Random(0)
    errors = []
    for text in paragraphs[:40]:
        near = perturb(text, rng, 0.08)
        sig = mh.signatures([text, near])
        est = float((sig[0] == sig[1]).mean())
        errors.append(abs(est - true_jaccard(text, near)))
    # standard error of the estimate is sqrt(J(1-J)/256) <= 0.031
    assert np.mean(errors) < 0.03
    assert max(errors) < 0.12


def test_bands_put_the_s_curve_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        b, r = optimal_bands(threshold, 128)
        assert b * r <= 128
        crossing = (1 / b) ** (1 / r)  # where the candidate probability is steepest
        assert abs(crossing - threshold) < 0.12


@pytest.mark.parametrize("threshold", [0.7, 0.8])
def test_near_duplicates_found_at_threshold(paragraphs, threshold):
    rng = random.Random(1)
    originals = paragraphs[:200]
    planted = []
    for text in originals[:100]:
        # edits of decreasing size until the copy is above the threshold (measured exactly)
        for rate in (0.10, 0.07, 0.05, 0.03, 0.02):
            near = perturb(text, rng, rate)
            if true_jaccard(text, near) >= threshold + 0.02:
                planted.append(near)
                break
    assert len(planted) >= 90
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    mh = MinHasher(num_perm=128)
    false_pos = sum(lsh.add(s) for s in mh.signatures(originals))
    found = sum(lsh.add(s) for s in mh.signatures(planted))
    assert found / len(planted) >= 0.9, f"found {found} of {len(planted)} planted near duplicates"
    assert false_pos == 0  # distinct Wikipedia paragraphs are not near duplicates


def test_distinct_documents_are_kept(paragraphs):
    lsh = MinHashLSH(threshold=0.8)
    mh = MinHasher()
    assert not any(lsh.add(s) for s in mh.signatures(paragraphs))
    assert len(lsh) == len(paragraphs)
