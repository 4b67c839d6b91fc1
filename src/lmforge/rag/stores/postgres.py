"""PostgreSQL store: pgvector (HNSW, cosine) for dense search and tsvector full-text search for
lexical search, behind the same interface as the SQLite store. Chosen by a ``postgresql://`` URL.

Filters and access control become WHERE clauses; dense search uses pgvector's iterative index scan
so that filtered queries still return k rows. Every write is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rag.filters import Condition, Filters, Principal
from lmforge.rag.stores.base import FILTER_COLUMNS, chunk_row
from lmforge.rag.text import query_terms
from lmforge.rag.types import Chunk, DocumentRecord

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS {p}meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS {p}documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    mtime DOUBLE PRECISION,
    meta JSONB NOT NULL DEFAULT '{{}}',
    allowed TEXT[] NOT NULL DEFAULT '{{}}',
    public BOOLEAN NOT NULL DEFAULT TRUE,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    indexed_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS {p}documents_allowed ON {p}documents USING gin (allowed);
CREATE TABLE IF NOT EXISTS {p}chunks (
    id BIGSERIAL PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES {p}documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    section JSONB NOT NULL DEFAULT '[]',
    page INTEGER,
    title TEXT NOT NULL DEFAULT '',
    embedding vector({dim}) NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', text), 'A') || setweight(to_tsvector('english', title), 'C')
    ) STORED
);
CREATE INDEX IF NOT EXISTS {p}chunks_doc ON {p}chunks(doc_id);
CREATE INDEX IF NOT EXISTS {p}chunks_tsv ON {p}chunks USING gin (tsv);
CREATE INDEX IF NOT EXISTS {p}chunks_hnsw ON {p}chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
"""


class PostgresStore:
    """``postgresql://user@host/db`` (add ``?table_prefix=name_`` to keep several stores in one database)."""

    def __init__(self, url: str, create: bool = True, dim: int | None = None, ef_search: int = 100):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a rag dependency
            raise LmforgeError(
                "the postgres store needs psycopg: pip install 'psycopg[binary]'"
            ) from exc
        self.url = url
        self.prefix = _prefix_from_url(url)
        conninfo = _strip_prefix_param(url)
        try:
            self.conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise LmforgeError(
                f"{_redact(url)}: cannot connect: {str(exc).strip().splitlines()[0]}"
            ) from exc
        self.ef_search = ef_search
        self._create = create
        self._dim = dim
        self._ready = self._table_exists()
        if not self._ready and not create:
            raise LmforgeError(f"{_redact(url)}: no lmforge store here; run `lmforge index` first")

    def _t(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _table_exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (self._t("chunks"),)).fetchone()
        return row[0] is not None

    def _ensure_schema(self, dim: int) -> None:
        if self._ready:
            return
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._t("schema"),))
            for statement in _SCHEMA.format(p=self.prefix, dim=int(dim)).split(";"):
                if statement.strip():
                    self.conn.execute(statement)
        self._ready = True

    def _meta_get(self, key: str) -> str | None:
        if not self._ready:
            return None
        row = self.conn.execute(
            f"SELECT value FROM {self._t('meta')} WHERE key = %s", (key,)
        ).fetchone()
        return row[0] if row else None

    def check_embedder(self, model_id: str, dim: int) -> None:
        self._ensure_schema(dim)
        stored = self._meta_get("embedder")
        if stored is None:
            self.conn.execute(
                f"INSERT INTO {self._t('meta')} VALUES ('embedder', %s) ON CONFLICT (key) DO NOTHING",
                (json.dumps({"model_id": model_id, "dim": dim}),),
            )
            return
        info = json.loads(stored)
        if info["model_id"] != model_id or info["dim"] != dim:
            raise LmforgeError(
                f"{_redact(self.url)}: store was built with embedder {info['model_id']} ({info['dim']}-d), not {model_id} ({dim}-d)"
            )

    def document_hashes(self) -> dict[str, str]:
        if not self._ready:
            return {}
        return dict(
            self.conn.execute(f"SELECT doc_id, content_hash FROM {self._t('documents')}").fetchall()
        )

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        if not self._ready:
            return None
        row = self.conn.execute(
            f"SELECT doc_id, title, content_hash, mtime, meta, allowed, n_chunks FROM {self._t('documents')} WHERE doc_id = %s",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        return DocumentRecord(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), row[6])

    def write_documents(
        self, items: Sequence[tuple[DocumentRecord, list[Chunk], np.ndarray]]
    ) -> None:
        if not items:
            return
        self._ensure_schema(int(np.asarray(items[0][2]).shape[-1]))
        with self.conn.transaction(), self.conn.cursor() as cur:
            for record, chunks, vectors in items:
                cur.execute(
                    f"DELETE FROM {self._t('documents')} WHERE doc_id = %s", (record.doc_id,)
                )
                cur.execute(
                    f"INSERT INTO {self._t('documents')} (doc_id, title, content_hash, mtime, meta, allowed, public, n_chunks, indexed_at)"
                    " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
                    (
                        record.doc_id,
                        record.title,
                        record.content_hash,
                        record.mtime,
                        json.dumps(record.meta, default=str),
                        list(record.allowed),
                        not record.allowed,
                        len(chunks),
                        time.time(),
                    ),
                )
                with cur.copy(
                    f"COPY {self._t('chunks')} (chunk_id, doc_id, ordinal, text, start_offset, end_offset, section, page, title, embedding) FROM STDIN"
                ) as copy:
                    for c, v in zip(chunks, vectors, strict=True):
                        copy.write_row((*chunk_row(record.doc_id, c), _vector_literal(v)))

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        if not self._ready or not doc_ids:
            return 0
        with self.conn.transaction():
            cur = self.conn.execute(
                f"DELETE FROM {self._t('documents')} WHERE doc_id = ANY(%s)", (doc_ids,)
            )
            return cur.rowcount

    def _where(self, filters: Filters, principal: Principal) -> tuple[str, list[Any]]:
        clauses = ["(d.public OR d.allowed && %s::text[])"]
        params: list[Any] = [principal.tokens]
        for cond in filters.conditions:
            sql, values = _condition_sql(cond)
            clauses.append(sql)
            params += values
        return " AND ".join(clauses), params

    def lexical_search(
        self, query: str, k: int, filters: Filters, principal: Principal
    ) -> list[tuple[str, float]]:
        terms = query_terms(query)
        if not terms or k <= 0 or not self._ready:
            return []
        where, params = self._where(filters, principal)
        # OR of the terms, each stemmed by the english configuration; ts_rank_cd ranks by cover density.
        sql = (
            f"WITH q AS (SELECT to_tsquery('english', %s) AS query)"
            f" SELECT c.chunk_id, ts_rank_cd(c.tsv, q.query, 1) AS score FROM {self._t('chunks')} c"
            f" JOIN {self._t('documents')} d ON d.doc_id = c.doc_id, q"
            f" WHERE c.tsv @@ q.query AND {where} ORDER BY score DESC, c.id LIMIT %s"
        )
        tsquery = " | ".join(_ts_term(t) for t in terms)
        return [
            (cid, float(s)) for cid, s in self.conn.execute(sql, [tsquery, *params, k]).fetchall()
        ]

    def dense_search(
        self, vector: np.ndarray, k: int, filters: Filters, principal: Principal
    ) -> list[tuple[str, float]]:
        if k <= 0 or not self._ready:
            return []
        where, params = self._where(filters, principal)
        literal = _vector_literal(vector)
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), int(k))}")
            self.conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = self.conn.execute(
                f"SELECT chunk_id, dist FROM (SELECT c.chunk_id, c.embedding <=> %s::vector AS dist FROM {self._t('chunks')} c"
                f" JOIN {self._t('documents')} d ON d.doc_id = c.doc_id WHERE {where} ORDER BY c.embedding <=> %s::vector LIMIT %s) t"
                " ORDER BY dist",
                [literal, *params, literal, k],
            ).fetchall()
        return [(cid, 1.0 - float(dist)) for cid, dist in rows]

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        if not chunk_ids or not self._ready:
            return {}
        rows = self.conn.execute(
            f"SELECT c.chunk_id, c.doc_id, c.ordinal, c.text, c.start_offset, c.end_offset, c.section, c.page, c.title, d.meta"
            f" FROM {self._t('chunks')} c JOIN {self._t('documents')} d ON d.doc_id = c.doc_id WHERE c.chunk_id = ANY(%s)",
            (list(chunk_ids),),
        ).fetchall()
        return {
            r[0]: Chunk(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), r[7], r[8], r[9])
            for r in rows
        }

    def get_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not chunk_ids or not self._ready:
            return {}
        rows = self.conn.execute(
            f"SELECT chunk_id, embedding::text FROM {self._t('chunks')} WHERE chunk_id = ANY(%s)",
            (list(chunk_ids),),
        ).fetchall()
        return {cid: np.array(json.loads(text), dtype=np.float32) for cid, text in rows}

    def stats(self) -> dict:
        if not self._ready:
            return {
                "store": _redact(self.url),
                "kind": "postgres",
                "documents": 0,
                "chunks": 0,
                "embedder": None,
            }
        docs, chunks = self.conn.execute(
            f"SELECT (SELECT count(*) FROM {self._t('documents')}), (SELECT count(*) FROM {self._t('chunks')})"
        ).fetchone()
        stored = self._meta_get("embedder")
        return {
            "store": _redact(self.url),
            "kind": "postgres",
            "documents": docs,
            "chunks": chunks,
            "embedder": json.loads(stored)["model_id"] if stored else None,
        }

    def drop(self) -> None:
        """Remove this store's tables (tests and benchmarks use it to start clean)."""
        for table in ("chunks", "documents", "meta"):
            self.conn.execute(f"DROP TABLE IF EXISTS {self._t(table)} CASCADE")
        self._ready = False

    def close(self) -> None:
        self.conn.close()


def _ts_term(term: str) -> str:
    # Quote each word so to_tsquery treats it as a lexeme, not syntax.
    return "'" + term.replace("'", "''").replace("\\", "") + "'"


def _vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32).reshape(-1)) + "]"


def _condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    column = FILTER_COLUMNS.get(cond.key)
    if cond.op in ("eq", "in"):
        values = [_text(v) for v in (cond.value if cond.op == "in" else [cond.value])]
        if column:
            return f"({column})::text = ANY(%s)", [values]
        # Scalars compare as text; a list matches if any element does.
        return (
            "(CASE jsonb_typeof(d.meta -> %s) WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements_text(d.meta -> %s) e"
            " WHERE e = ANY(%s)) ELSE (d.meta ->> %s) = ANY(%s) END)",
            [cond.key, cond.key, values, cond.key, values],
        )
    op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[cond.op]
    numeric = isinstance(cond.value, (int, float)) and not isinstance(cond.value, bool)
    if column:
        return f"({column} {op} %s)", [cond.value]
    if numeric:
        return (
            f"(jsonb_typeof(d.meta -> %s) = 'number' AND (d.meta ->> %s)::double precision {op} %s)",
            [cond.key, cond.key, cond.value],
        )
    return f"((d.meta ->> %s) {op} %s)", [cond.key, str(cond.value)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _prefix_from_url(url: str) -> str:
    from urllib.parse import parse_qs, urlparse

    prefix = parse_qs(urlparse(url).query).get("table_prefix", ["lmforge_"])[0]
    if not prefix.replace("_", "").isalnum():
        raise LmforgeError(f"bad table_prefix {prefix!r}: letters, digits and '_' only")
    return prefix


def _strip_prefix_param(url: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

    parts = urlparse(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "table_prefix"]
    return urlunparse(parts._replace(query=urlencode(query)))


def _redact(url: str) -> str:
    from urllib.parse import urlparse

    parts = urlparse(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
