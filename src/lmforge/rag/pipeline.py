"""One RAG pipeline: a store and its embedder, and the indexer, retriever and answerer built on them.

Every front end (`lmforge index`/`ask`, the demo, `lmforge eval rag`, the benchmarks, next the
server) wires the components here and nowhere else:

    with Pipeline.open("store/", create=False) as rag:
        answer = rag.answerer(rag.load_chat()).ask("How do I create a virtual environment?")

Opening is cheap: the store opens, the embedder is named but loads on first use, and the chat
model loads only when asked for (`Pipeline.load_chat`, or a model name given to `answerer`), with
the embedder loading on a second thread meanwhile, so a cold `ask` pays for the slower of the
two, not both.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.assets import DEFAULT_MODEL, user_cache_dir
from lmforge.errors import LmforgeError
from lmforge.rag.answer import GroundedAnswerer
from lmforge.rag.chunker import Chunker
from lmforge.rag.embedder import Embedder, EmbeddingCache, get_embedder
from lmforge.rag.indexer import Indexer
from lmforge.rag.retriever import HybridRetriever, LLMReranker
from lmforge.rag.stores import Store, open_store
from lmforge.rag.types import ChatModel


def cache_path_for(store: Store) -> Path:
    """The embedding cache: inside a directory store, else in the user's cache directory."""
    directory = getattr(store, "directory", None)
    if directory is not None:
        return Path(directory) / "embedding_cache.sqlite"
    return user_cache_dir() / "embedding_cache.sqlite"


@dataclass
class Pipeline:
    """A store with the embedder its vectors come from; builds the components that use both."""

    store: Store
    embedder: Embedder

    @classmethod
    def open(
        cls,
        store_url: str | Path,
        *,
        embedder: str | Embedder | None = None,
        precision: str = "auto",
        create: bool = True,
    ) -> Pipeline:
        """Open (``create=True``: or create) a store with an embedder (a name for `get_embedder`,
        or an instance). With ``create=False`` the store must exist, hold chunks, and have been
        built with this embedder."""
        store = open_store(store_url, create=create)
        try:
            emb = (
                get_embedder(embedder, precision=precision)
                if embedder is None or isinstance(embedder, str)
                else embedder
            )
            if not create:
                _check_queryable(store, emb, str(store_url))
        except BaseException:
            store.close()
            raise
        return cls(store, emb)

    def indexer(
        self, *, chunk_tokens: int = 200, overlap_tokens: int = 32, **options: Any
    ) -> Indexer:
        """An incremental indexer into the store, with the embedding cache beside it.
        ``options`` go to `Indexer` (meta, allowed_groups, include, exclude, batch_chunks,
        progress)."""
        chunker = Chunker.for_embedder(self.embedder, chunk_tokens, overlap_tokens)
        cache = EmbeddingCache(cache_path_for(self.store))
        return Indexer(self.store, self.embedder, chunker, cache=cache, **options)

    def retriever(
        self,
        *,
        mode: str = "hybrid",
        candidates: int = 50,
        dedup: bool = True,
        mmr_lambda: float | None = None,
        rerank_with: ChatModel | None = None,
        similarity: bool = True,
    ) -> HybridRetriever:
        """Hybrid (or lexical, or dense) retrieval; ``rerank_with`` a chat model grades the
        candidates (slow)."""
        return HybridRetriever(
            self.store,
            self.embedder,
            mode=mode,
            candidates=candidates,
            dedup=dedup,
            mmr_lambda=mmr_lambda,
            llm_rerank=LLMReranker(rerank_with) if rerank_with is not None else None,
            similarity=similarity,
        )

    def answerer(
        self,
        chat_model: ChatModel | str | Path | None = None,
        *,
        precision: str = "auto",
        quantize: str | None = "auto",
        mode: str = "hybrid",
        mmr_lambda: float | None = None,
        llm_rerank: bool = False,
        **options: Any,
    ) -> GroundedAnswerer:
        """A grounded answerer. ``chat_model`` is a loaded model, a model name or path to load
        (`Pipeline.load_chat` with ``precision``/``quantize``), or None to answer extractively. ``options``
        go to `GroundedAnswerer` (k, style, unsupported, min_relevance, ...)."""
        if isinstance(chat_model, str | Path):
            chat_model = self.load_chat(chat_model, precision=precision, quantize=quantize)
        retriever = self.retriever(
            mode=mode,
            mmr_lambda=mmr_lambda,
            rerank_with=chat_model if llm_rerank else None,
        )
        return GroundedAnswerer(retriever, chat_model, **options)

    def load_chat(
        self,
        spec: str | Path = DEFAULT_MODEL,
        *,
        precision: str = "auto",
        quantize: str | None = "auto",
    ) -> ChatModel:
        """The chat model for answering (`lmforge.generate.load_chat_model`), with the embedder
        loading on a second thread meanwhile (a cold ask needs both; most of each load is file
        reading and torch kernels, which release the GIL)."""
        # imported here: generation pulls in the model room, which `lmforge index` never needs
        from lmforge.generate import load_chat_model

        warm = threading.Thread(target=_warm_up, args=(self.embedder,), daemon=True)
        warm.start()
        try:
            return load_chat_model(spec, precision=precision, quantize=quantize)
        finally:
            warm.join()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warm_up(embedder: Embedder) -> None:
    # a failure here shows again on the first real use, in the caller's thread
    with contextlib.suppress(Exception):
        embedder.embed(["warm up"])


def _check_queryable(store: Store, embedder: Embedder, store_url: str) -> None:
    stats = store.stats()
    built_with = stats.get("embedder")
    if built_with and built_with != embedder.model_id:
        raise LmforgeError(
            f"{store_url}: store was built with embedder {built_with}; pass --embedder for it"
        )
    if not stats.get("chunks"):
        raise LmforgeError(
            f"{store_url}: store is empty; run `lmforge index PATH --store {store_url}` first"
        )
