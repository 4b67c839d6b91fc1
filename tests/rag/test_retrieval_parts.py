"""Fusion, MMR, dedup, the vector index (exact vs HNSW) and the embedder against references."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.rag.embedder import (
    EmbeddingCache,
    MemoEmbedder,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    embed_with_cache,
)
from lmforge.rag.fusion import (
    maximal_marginal_relevance,
    near_duplicate_groups,
    reciprocal_rank_fusion,
)
from lmforge.rag.stores.sqlite import SQLiteStore
from lmforge.rag.types import Chunk, DocumentRecord

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog near the riverbank in early spring.",
    "Python's global interpreter lock lets only one thread execute bytecode at a time.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Hi",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War and reshaped the political map of Europe, "
    "establishing principles of state sovereignty that still underpin international law today.",
]


def test_rrf_matches_the_formula():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])][:2] == [
        "a",
        "c",
    ]


def test_mmr_prefers_diversity():
    q = np.array([1.0, 0.0, 0.0])
    cands = np.array([[0.9, 0.436, 0.0], [0.9, 0.436, 0.0], [0.8, 0.0, 0.6]])
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    assert maximal_marginal_relevance(q, cands, 2, lambda_=0.5) == [0, 2]
    assert maximal_marginal_relevance(q, cands, 2, lambda_=1.0)[:2] == [0, 1]


def test_near_duplicates_collapse():
    texts = [
        "Green tea is brewed at 80 degrees for two minutes.",
        "Green tea is brewed at 80 degrees for two minutes!",
        "Black tea wants boiling water.",
    ]
    assert near_duplicate_groups(texts) == [0, 0, 2]


def test_minilm_matches_sentence_transformers():
    # our own BERT forward and the `tokenizers` tokenizer against sentence-transformers (which
    # runs transformers' BertModel): the same vectors, up to float rounding, and the same token
    # counts; the long text checks truncation at max_tokens
    texts = [*SENTENCES, "Café naïve Straße 東京 — déjà vu.", "word " * 400]
    ours = MiniLMEmbedder(precision="fp32")
    reference = SentenceTransformerEmbedder()
    mine, theirs = ours.embed(texts), reference.embed(texts)
    assert mine.shape == theirs.shape == (len(texts), 384)
    assert np.abs(mine - theirs).max() < 1e-5
    assert ours.count_tokens(texts) == reference.count_tokens(texts)


@pytest.mark.slow
def test_bf16_embeddings_within_0999_cosine_of_fp32(embedder):
    fast = MiniLMEmbedder(precision="bf16").embed(SENTENCES)
    assert np.min(np.sum(fast * embedder.embed(SENTENCES), axis=1)) >= 0.999


def test_embedding_cache_skips_the_model(tmp_path, embedder):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first, n1 = embed_with_cache(embedder, SENTENCES[:3] + SENTENCES[:1], cache)
    second, n2 = embed_with_cache(embedder, SENTENCES[:3], cache)
    assert (n1, n2) == (3, 0)
    assert np.allclose(first[:3], second) and np.allclose(first[0], first[3])


class CountingEmbedder:
    """Deterministic vectors from the text; counts the texts it is asked to embed."""

    model_id, dim, max_tokens = "counting", 8, 64

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def embed(self, texts):
        self.embedded += list(texts)
        rows = [np.random.default_rng(sum(map(ord, t))).standard_normal(8) for t in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), 8)


def test_memo_embedder_embeds_each_text_once():
    inner = CountingEmbedder()
    memo = MemoEmbedder(inner, max_items=4)
    first = memo.embed(["a", "b", "a"])
    assert inner.embedded == ["a", "b"]  # the repeat within a call is computed once
    second = memo.embed(["b", "c"])
    assert inner.embedded == ["a", "b", "c"]  # and across calls
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(second, inner.embed(["b", "c"]))
    memo.embed(["d", "e"])  # past max_items: starts afresh, still correct
    np.testing.assert_array_equal(memo.embed(["a"]), inner.embed(["a"]))
    assert memo.embed([]).shape == (0, 8) and memo.dim == 8 and memo.model_id == "counting"


def _fill(store: SQLiteStore, n_docs: int, per_doc: int, rng, start: int = 0) -> None:
    store.check_embedder("random", 32)
    items = []
    for d in range(start, start + n_docs):
        vecs = rng.standard_normal((per_doc, 32)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        chunks = [Chunk(f"d{d}c{i}", f"doc{d}", i, f"text {d} {i}", 0, 1) for i in range(per_doc)]
        allowed = ("team",) if d % 2 else ()
        items.append(
            (
                DocumentRecord(f"doc{d}", f"doc {d}", str(d), 0.0, {"n": d}, allowed, per_doc),
                chunks,
                vecs,
            )
        )
    store.write_documents(items)


def test_hnsw_agrees_with_exact_and_follows_updates(tmp_path):
    from lmforge.rag.filters import ANONYMOUS, Principal, parse_filters

    rng = np.random.default_rng(0)
    store = SQLiteStore(tmp_path / "s", ann_threshold=500)
    _fill(store, 60, 20, rng)  # 1,200 vectors: above the ANN threshold
    none = parse_filters(None)
    team = Principal("x", ("team",))
    index = store.vectors()
    assert index.hnsw is not None and index.hnsw.ntotal == 1200
    recall = []
    for _ in range(20):
        q = rng.standard_normal(32).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = [c for c, _ in store.dense_search(q, 10, none, team, use_ann=False)]
        approx = [c for c, _ in store.dense_search(q, 10, none, team, use_ann=True)]
        recall.append(len(set(exact) & set(approx)) / 10)
        # Access control holds on the ANN path too: anonymous readers get only public (even) docs.
        public = [c for c, _ in store.dense_search(q, 10, none, ANONYMOUS, use_ann=True)]
        assert public and all(int(c[1:].split("c")[0]) % 2 == 0 for c in public)
    assert np.mean(recall) >= 0.9
    # Deleting and adding documents: the derived files follow (append + tombstones).
    store.delete_documents([f"doc{d}" for d in range(10)])
    _fill(store, 5, 20, rng, start=100)
    index = store.vectors()
    assert index.hnsw.ntotal == 1300 and int(index.live.sum()) == 1100
    q = store.get_embeddings(["d100c3"])["d100c3"]
    for use_ann in (True, False):
        hits = store.dense_search(q, 5, none, team, use_ann=use_ann)
        assert hits[0][0] == "d100c3" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert not any(
            c.startswith(("d0c", "d2c", "d4c"))
            for c, _ in store.dense_search(q, 200, none, team, use_ann=use_ann)
        )
    # A fresh process (new store object) reuses the files.
    again = SQLiteStore(tmp_path / "s", ann_threshold=500)
    assert again.dense_search(q, 1, none, team)[0][0] == "d100c3"
