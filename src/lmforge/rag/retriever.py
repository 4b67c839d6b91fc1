"""Hybrid retrieval: lexical and dense candidates fused by reciprocal rank fusion, then near
duplicates collapsed and, optionally, reranked (MMR for diversity, or an LLM judging relevance).

Filters and access control are applied inside the store's searches, so nothing here ever sees a
chunk the principal may not read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rag.embedder import Embedder
from lmforge.rag.filters import ANONYMOUS, Principal, parse_filters
from lmforge.rag.fusion import (
    maximal_marginal_relevance,
    near_duplicate_groups,
    reciprocal_rank_fusion,
)
from lmforge.rag.stores.base import Store
from lmforge.rag.types import ChatModel, Hit

MODES = ("hybrid", "lexical", "dense")


@dataclass
class RetrievalResult:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    query_vector: np.ndarray | None = None


class HybridRetriever:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        mode: str = "hybrid",
        candidates: int = 50,
        rrf_k: int = 60,
        dedup: bool = True,
        mmr_lambda: float | None = None,
        llm_rerank: LLMReranker | None = None,
        similarity: bool = True,
    ):
        if mode not in MODES:
            raise LmforgeError(f"unknown retrieval mode {mode!r} (use {', '.join(MODES)})")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.dedup = dedup
        self.mmr_lambda = mmr_lambda
        self.llm_rerank = llm_rerank
        # every hit carries its dense cosine (the answerer's relevance check needs it); costs a
        # query embedding in lexical mode
        self.similarity = similarity

    def run(
        self, query: str, k: int = 5, filters=None, principal: Principal = ANONYMOUS
    ) -> RetrievalResult:
        filters = parse_filters(filters)
        timings: dict[str, float] = {}
        n = max(self.candidates, k)
        lexical: list[tuple[str, float]] = []
        dense: list[tuple[str, float]] = []
        qvec = None
        if self.mode in ("hybrid", "lexical"):
            t = time.perf_counter()
            lexical = self.store.lexical_search(query, n, filters, principal)
            timings["lexical"] = _ms(t)
        if self.mode in ("hybrid", "dense"):
            t = time.perf_counter()
            qvec = self.embedder.embed([query])[0]
            timings["embed_query"] = _ms(t)
            t = time.perf_counter()
            dense = self.store.dense_search(qvec, n, filters, principal)
            timings["dense"] = _ms(t)

        t = time.perf_counter()
        if self.mode == "hybrid":
            fused = reciprocal_rank_fusion(
                [[c for c, _ in lexical], [c for c, _ in dense]], k=self.rrf_k
            )
        else:
            fused = lexical or dense
        lex_rank = {c: i for i, (c, _) in enumerate(lexical, start=1)}
        dense_rank = {c: i for i, (c, _) in enumerate(dense, start=1)}
        chunks = self.store.get_chunks([c for c, _ in fused])
        hits = [
            Hit(chunks[c], s, lex_rank.get(c), dense_rank.get(c)) for c, s in fused if c in chunks
        ]
        timings["fuse"] = _ms(t)

        need_vectors = self.dedup or self.mmr_lambda is not None or self.similarity
        vectors = None
        if hits and need_vectors:
            emb = self.store.get_embeddings([h.chunk.chunk_id for h in hits])
            vectors = np.stack([emb[h.chunk.chunk_id] for h in hits])
        if hits and (self.similarity or self.mmr_lambda is not None) and qvec is None:
            t = time.perf_counter()
            qvec = self.embedder.embed([query])[0]
            timings["embed_query"] = _ms(t)
        if hits and self.similarity:
            for hit, cosine in zip(hits, vectors @ qvec, strict=True):
                hit.similarity = float(cosine)
        if self.dedup and hits:
            t = time.perf_counter()
            limit = min(len(hits), 4 * k)  # only the head matters; the tail is cut anyway
            owners = near_duplicate_groups([h.chunk.text for h in hits[:limit]], vectors[:limit])
            keep = [i for i, o in enumerate(owners) if o == i] + list(range(limit, len(hits)))
            hits = [hits[i] for i in keep]
            vectors = vectors[keep]
            timings["dedup"] = _ms(t)
        if self.mmr_lambda is not None and hits:
            t = time.perf_counter()
            order = maximal_marginal_relevance(qvec, vectors, k, self.mmr_lambda)
            hits = [hits[i] for i in order] + [h for i, h in enumerate(hits) if i not in set(order)]
            timings["mmr"] = _ms(t)
        if self.llm_rerank is not None and hits:
            t = time.perf_counter()
            hits = self.llm_rerank.rerank(query, hits[: max(k, 10)])
            timings["llm_rerank"] = _ms(t)
        return RetrievalResult(hits[:k], timings, qvec)


class LLMReranker:
    """Ask the chat model to grade each candidate's relevance 0-10 and sort by that grade
    (ties keep the retrieval order). Slow: one short generation per candidate."""

    PROMPT = (
        "Rate how well the passage answers the question, from 0 (unrelated) to 10 (answers it "
        "directly). Reply with the number only.\n\nQuestion: {question}\n\nPassage: {passage}"
    )

    def __init__(self, chat_model: ChatModel):
        self.chat_model = chat_model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        graded = []
        for i, hit in enumerate(hits):
            reply = self.chat_model.chat(
                [
                    {
                        "role": "user",
                        "content": self.PROMPT.format(
                            question=query, passage=hit.chunk.text[:1500]
                        ),
                    }
                ],
                max_new_tokens=4,
                temperature=0.0,
            )
            match = re.search(r"\d+", reply)
            grade = min(10, int(match.group())) if match else 0
            graded.append((-grade, i, hit))
        return [h for _, _, h in sorted(graded, key=lambda g: (g[0], g[1]))]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
