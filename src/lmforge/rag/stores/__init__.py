"""Document stores: embedded SQLite (default) and PostgreSQL + pgvector.

`open_store` picks the implementation from the URL. It lives here, above `base` (the interface
and the helpers both stores share), so the stores import `base` and nothing imports back.
"""

from __future__ import annotations

from pathlib import Path

from lmforge.rag.stores.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str | Path, **options) -> Store:
    """A directory path opens (or creates) the embedded SQLite store; ``postgresql://`` a server."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from lmforge.rag.stores.postgres import PostgresStore

        return PostgresStore(text, **options)
    from lmforge.rag.stores.sqlite import SQLiteStore

    return SQLiteStore(text, **options)
