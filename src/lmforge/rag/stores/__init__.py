"""Document stores: embedded SQLite (default) and PostgreSQL + pgvector."""

from lmforge.rag.stores.base import Store, open_store

__all__ = ["Store", "open_store"]
