"""Grounded question answering over your documents.

Components (small, typed, heavy loading deferred): loaders -> `Chunker` -> `Embedder` -> a store
(`open_store`: SQLite directory or PostgreSQL URL) -> `HybridRetriever` -> `GroundedAnswerer`.
`Indexer` runs ingestion incrementally. `Pipeline` wires them (see lmforge.rag.pipeline) and is
what every front end calls. See docs/rag.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_file": "lmforge.rag.loaders",
    "Chunker": "lmforge.rag.chunker",
    "Embedder": "lmforge.rag.embedder",
    "MiniLMEmbedder": "lmforge.rag.embedder",
    "SentenceTransformerEmbedder": "lmforge.rag.embedder",
    "EmbeddingCache": "lmforge.rag.embedder",
    "get_embedder": "lmforge.rag.embedder",
    "Indexer": "lmforge.rag.indexer",
    "IndexReport": "lmforge.rag.indexer",
    "open_store": "lmforge.rag.stores",
    "Store": "lmforge.rag.stores.base",
    "HybridRetriever": "lmforge.rag.retriever",
    "LLMReranker": "lmforge.rag.retriever",
    "GroundedAnswerer": "lmforge.rag.answer",
    "ExtractiveAnswerer": "lmforge.rag.answer",
    "Answer": "lmforge.rag.answer",
    "REFUSAL": "lmforge.rag.answer",
    "Principal": "lmforge.rag.filters",
    "parse_filters": "lmforge.rag.filters",
    "reciprocal_rank_fusion": "lmforge.rag.fusion",
    "Pipeline": "lmforge.rag.pipeline",
    "ChatModel": "lmforge.rag.types",
    "Hit": "lmforge.rag.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lmforge.rag' has no attribute {name!r}")
