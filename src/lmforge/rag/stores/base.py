"""The document store interface, and the row and filter helpers both stores share.

A store is the system of record for documents, chunks, metadata, access lists and embeddings, and
answers two kinds of search: lexical (BM25-style full text) and dense (cosine over unit vectors).
Both searches apply metadata filters and access control inside the store, so a chunk a reader may
not see is never returned, not even to be dropped later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from lmforge.rag.filters import Filters, Principal
from lmforge.rag.types import Chunk, DocumentRecord


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
# ("source" is the document's relative path, as `ask --json` names it; "source_name" its source)
FILTER_COLUMNS = {
    "source": "d.path",
    "source_name": "d.source",
    "doc_id": "d.doc_id",
    "title": "d.title",
    "mtime": "d.mtime",
    "page": "c.page",
}


@runtime_checkable
class Store(Protocol):
    url: str

    def document_hashes(self, source: str | None = None) -> dict[str, str]:
        """doc_id -> content hash of every stored document, or of one source's (for
        incremental indexing)."""
        ...

    def sources(self) -> dict[str, str]:
        """Source name -> the absolute path of the folder it was indexed from."""
        ...

    def set_source(self, name: str, root: str) -> None:
        """Record a source (or the new place of its folder)."""
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

    def missing_terms(
        self, terms: Sequence[str], filters: Filters, principal: Principal
    ) -> list[str]:
        """The terms (each a word or phrase, tokenized as lexical search tokenizes) that no chunk
        the principal may read contains: what the documents never mention."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]: ...

    def get_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def check_embedder(self, model_id: str, dim: int) -> None:
        """Record the embedding model on first use; refuse a different one later."""
        ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...
