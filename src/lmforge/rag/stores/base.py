"""The document store interface, and `open_store` which picks an implementation from a URL.

A store is the system of record for documents, chunks, metadata, access lists and embeddings, and
answers two kinds of search: lexical (BM25-style full text) and dense (cosine over unit vectors).
Both searches apply metadata filters and access control inside the store, so a chunk a reader may
not see is never returned, not even to be dropped later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lmforge.rag.filters import Filters, Principal
from lmforge.rag.types import Chunk, DocumentRecord

# Words too common to help lexical search (a short English list, as in most BM25 setups).
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


def chunk_row(doc_id: str, chunk: Chunk) -> tuple:
    """The chunk columns every store writes, in schema order (the embedding column follows)."""
    return (
        chunk.chunk_id,
        doc_id,
        chunk.ordinal,
        chunk.text,
        chunk.start,
        chunk.end,
        json.dumps(list(chunk.section)),
        chunk.page,
        chunk.title,
    )


# filter keys that are columns of the documents (d) or chunks (c) table, not metadata fields
FILTER_COLUMNS = {
    "source": "d.doc_id",
    "doc_id": "d.doc_id",
    "title": "d.title",
    "mtime": "d.mtime",
    "page": "c.page",
}


def query_terms(text: str) -> list[str]:
    """Lower-cased word tokens of a query, stopwords dropped, order kept, duplicates removed."""
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))


@runtime_checkable
class Store(Protocol):
    url: str

    def document_hashes(self) -> dict[str, str]:
        """doc_id -> content hash of every stored document (for incremental indexing)."""
        ...

    def get_document(self, doc_id: str) -> DocumentRecord | None: ...

    def write_documents(
        self, items: Sequence[tuple[DocumentRecord, list[Chunk], np.ndarray]]
    ) -> None:
        """Insert or replace documents with their chunks and vectors, all in one transaction."""
        ...

    def delete_documents(self, doc_ids: Iterable[str]) -> int: ...

    def lexical_search(
        self, query: str, k: int, filters: Filters, principal: Principal
    ) -> list[tuple[str, float]]:
        """(chunk_id, score) best first; higher is better."""
        ...

    def dense_search(
        self, vector: np.ndarray, k: int, filters: Filters, principal: Principal
    ) -> list[tuple[str, float]]:
        """(chunk_id, cosine) best first."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]: ...

    def get_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def check_embedder(self, model_id: str, dim: int) -> None:
        """Record the embedding model on first use; refuse a different one later."""
        ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...


def open_store(url: str | Path, **options) -> Store:
    """A directory path opens (or creates) the embedded SQLite store; ``postgresql://`` a server."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from lmforge.rag.stores.postgres import PostgresStore

        return PostgresStore(text, **options)
    from lmforge.rag.stores.sqlite import SQLiteStore

    return SQLiteStore(text, **options)
