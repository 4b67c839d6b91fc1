"""Wiring: open a store with the embedder it was built with, and assemble indexer and answerer.

This is what the command line and the demo call; library users can wire components by hand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lmforge.assets import DEFAULT_MODEL
from lmforge.errors import LmforgeError
from lmforge.rag.embedder import Embedder, EmbeddingCache, get_embedder
from lmforge.rag.stores.base import Store, open_store


def cache_path_for(store: Store) -> Path:
    """The embedding cache: inside a directory store, else in the user's cache directory."""
    directory = getattr(store, "directory", None)
    if directory is not None:
        return Path(directory) / "embedding_cache.sqlite"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lmforge" / "embedding_cache.sqlite"


def open_for_query(store_url: str, embedder: str | None = None) -> tuple[Store, Embedder]:
    store = open_store(store_url, create=False)
    emb = get_embedder(embedder)
    stats = store.stats()
    built_with = stats.get("embedder")
    if built_with and built_with != emb.model_id:
        raise LmforgeError(
            f"{store_url}: store was built with embedder {built_with}; pass --embedder for it"
        )
    if not stats.get("chunks"):
        raise LmforgeError(
            f"{store_url}: store is empty; run `lmforge index PATH --store {store_url}` first"
        )
    return store, emb


def load_generator(spec: str = DEFAULT_MODEL, quantize: str | None = None):
    """The chat model for answering, or None (with a note on stderr) when generation is unavailable."""
    try:
        from lmforge.generate import load_chat_model
    except ImportError as exc:
        print(
            f"lmforge: note: generation unavailable ({exc}); answering extractively",
            file=sys.stderr,
        )
        return None
    return load_chat_model(spec, quantize=quantize) if quantize else load_chat_model(spec)


def make_cache(store: Store) -> EmbeddingCache:
    return EmbeddingCache(cache_path_for(store))
