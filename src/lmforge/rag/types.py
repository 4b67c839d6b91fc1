"""The records that flow between RAG components (loaded documents, chunks, search hits) and the
chat model interface the answerer takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Block:
    """A run of document text: a paragraph (or a code block, a list item) inside one section.

    ``start``/``end`` are character offsets into ``LoadedDocument.text``; ``section`` is the heading
    path above the block (outermost first) and ``page`` the 1-based PDF page, if any.
    """

    start: int
    end: int
    section: tuple[str, ...] = ()
    page: int | None = None


@dataclass
class LoadedDocument:
    """The text a loader extracted from one file, with its structure and metadata."""

    text: str
    title: str
    blocks: list[Block]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """A piece of a document small enough to embed and to quote.

    ``text == document_text[start:end]``; ``doc_id`` is the document's key in the store, made
    of ``source`` (the name of the folder it was indexed from) and ``path`` (relative to that
    folder); stores fill both when they return chunks.
    """

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    section: tuple[str, ...] = ()
    page: int | None = None
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    path: str = ""  # defaults to doc_id (chunks made outside a store)

    def __post_init__(self) -> None:
        self.path = self.path or self.doc_id

    @property
    def section_path(self) -> str:
        return " > ".join(self.section)

    def embed_text(self) -> str:
        """What the embedder sees: the title and section path give a short chunk its context."""
        head = " > ".join(part for part in (self.title, *self.section) if part)
        return f"{head}\n{self.text}" if head else self.text


@dataclass
class DocumentRecord:
    """One indexed document as the store keeps it: ``doc_id`` is `sources.document_key` of its
    ``source`` name and its ``path`` relative to that source's folder."""

    doc_id: str
    title: str
    content_hash: str
    mtime: float
    meta: dict[str, Any] = field(default_factory=dict)
    allowed: tuple[str, ...] = ()  # groups (or "user:NAME") allowed to read it; () = public
    n_chunks: int = 0
    source: str = ""
    path: str = ""  # defaults to doc_id (records made outside the indexer)

    def __post_init__(self) -> None:
        self.path = self.path or self.doc_id


@dataclass
class Hit:
    """A retrieved chunk with the score of the stage that produced it.

    ``similarity`` is the cosine between the query's and the chunk's embedding (None when the
    retriever had no query vector), so later stages need not fetch vectors again.
    """

    chunk: Chunk
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None
    similarity: float | None = None


Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str}


@runtime_checkable
class ChatModel(Protocol):
    """What the answerer and the reranker need from a language model
    (`lmforge.generate.load_chat_model` returns one)."""

    def chat(
        self,
        messages: Sequence[Message],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> str:
        """The assistant's reply to the conversation."""
        ...

    def stream_chat(
        self,
        messages: Sequence[Message],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """The reply as text deltas while it is generated."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the text costs in the model's context (no special tokens)."""
        ...
