"""PostgreSQL store: pgvector (HNSW, cosine) for dense search and BM25 over per-term postings for
lexical search, behind the same interface as the SQLite store. Chosen by a ``postgresql://`` URL.

Lexical search ranks exactly as the SQLite store's FTS5 does (see `bm25.py`): the same tokens (FTS5's
own ``porter unicode61`` tokenizer), the same k1, b and column weights, the same IDF. Each chunk's
term positions per column live in ``terms``, its token count in ``chunks.n_tokens``, and the corpus
totals (chunks, tokens) in the one-row ``corpus`` table, kept in step by every write.

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
from lmforge.rag.sources import document_key, legacy_sources
from lmforge.rag.stores import bm25
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
    indexed_at DOUBLE PRECISION,
    source TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS {p}documents_allowed ON {p}documents USING gin (allowed);
CREATE INDEX IF NOT EXISTS {p}documents_source ON {p}documents (source, path);
CREATE TABLE IF NOT EXISTS {p}chunks (
    id BIGSERIAL PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES {p}documents(doc_id) ON DELETE CASCADE ON UPDATE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    section JSONB NOT NULL DEFAULT '[]',
    page INTEGER,
    title TEXT NOT NULL DEFAULT '',
    embedding vector({dim}) NOT NULL,
    n_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {p}chunks_doc ON {p}chunks(doc_id);
CREATE INDEX IF NOT EXISTS {p}chunks_hnsw ON {p}chunks USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
"""

# The lexical index: one row per (term, chunk) with the term's token positions in each column
# (positions make phrases such as foo_bar -> "foo bar" match as FTS5 matches them).
_LEXICON = """
CREATE TABLE IF NOT EXISTS {p}terms (
    term TEXT NOT NULL,
    chunk BIGINT NOT NULL REFERENCES {p}chunks(id) ON DELETE CASCADE,
    pos_text INTEGER[] NOT NULL,
    pos_title INTEGER[] NOT NULL,
    pos_section INTEGER[] NOT NULL,
    PRIMARY KEY (term, chunk)
);
CREATE INDEX IF NOT EXISTS {p}terms_chunk ON {p}terms(chunk);
CREATE TABLE IF NOT EXISTS {p}corpus (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    n_chunks BIGINT NOT NULL,
    n_tokens BIGINT NOT NULL
);
INSERT INTO {p}corpus VALUES (TRUE, 0, 0) ON CONFLICT DO NOTHING;
"""
_SOURCES = """
CREATE TABLE IF NOT EXISTS {p}sources (name TEXT PRIMARY KEY, root TEXT NOT NULL, updated_at DOUBLE PRECISION)
"""
_POSITIONS = ("pos_text", "pos_title", "pos_section")  # in the order of bm25.COLUMNS


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
        self._ready = self._table_exists("chunks")
        if not self._ready and not create:
            raise LmforgeError(f"{_redact(url)}: no lmforge store here; run `lmforge index` first")
        if self._ready and not self._table_exists("terms"):
            self._build_lexicon()
        if self._ready and not self._has_column("documents", "source"):
            self._migrate()

    def _has_column(self, table: str, column: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s"
            " AND NOT attisdropped",
            (self._t(table), column),
        ).fetchone()
        return row is not None

    def _migrate(self) -> None:
        """Bring a store written before sources up to this schema, in place, once (as the
        SQLite store does: documents keyed by (source, path), the folders named from ``root``)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._t("schema"),))
            if self._has_column("documents", "source"):  # another process did it while we waited
                return
            roots, plan = legacy_sources(
                cur.execute(f"SELECT doc_id, meta FROM {self._t('documents')}").fetchall()
            )
            docs, chunks = self._t("documents"), self._t("chunks")
            cur.execute(
                f"ALTER TABLE {docs} ADD COLUMN source TEXT NOT NULL DEFAULT '',"
                " ADD COLUMN path TEXT NOT NULL DEFAULT ''"
            )
            # Chunks follow their document's id through ON UPDATE CASCADE from now on.
            cur.execute(
                f"ALTER TABLE {chunks} DROP CONSTRAINT IF EXISTS {chunks}_doc_id_fkey,"
                f" ADD CONSTRAINT {chunks}_doc_id_fkey FOREIGN KEY (doc_id) REFERENCES {docs}(doc_id)"
                " ON DELETE CASCADE ON UPDATE CASCADE"
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {docs}_source ON {docs} (source, path)")
            cur.execute(_SOURCES.format(p=self.prefix))
            cur.executemany(
                f"INSERT INTO {self._t('sources')} VALUES (%s, %s, %s)",
                [(name, root, time.time()) for name, root in roots.items()],
            )
            olds = list(plan)
            news = [document_key(*plan[old]) for old in olds]
            # Through a temporary id ("\x01" + new): a new id may equal another document's old one.
            cur.execute(
                f"UPDATE {docs} d SET doc_id = chr(1) || m.new, source = m.source, path = m.path"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) m(old, new, source, path)"
                " WHERE d.doc_id = m.old",
                (olds, news, [plan[o][0] for o in olds], [plan[o][1] for o in olds]),
            )
            cur.execute(
                f"UPDATE {docs} SET doc_id = substr(doc_id, 2) WHERE left(doc_id, 1) = chr(1)"
            )

    def sources(self) -> dict[str, str]:
        if not self._table_exists("sources"):
            return {}
        return dict(
            self.conn.execute(
                f"SELECT name, root FROM {self._t('sources')} ORDER BY name"
            ).fetchall()
        )

    def set_source(self, name: str, root: str) -> None:
        with self.conn.transaction():
            self.conn.execute(_SOURCES.format(p=self.prefix))
            self.conn.execute(
                f"INSERT INTO {self._t('sources')} VALUES (%s, %s, %s) ON CONFLICT (name)"
                " DO UPDATE SET root = excluded.root, updated_at = excluded.updated_at",
                (name, root, time.time()),
            )

    def _t(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _table_exists(self, name: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (self._t(name),)).fetchone()
        return row[0] is not None

    def _ensure_schema(self, dim: int) -> None:
        if self._ready:
            return
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._t("schema"),))
            schema = _SCHEMA + _LEXICON + _SOURCES
            for statement in schema.format(p=self.prefix, dim=int(dim)).split(";"):
                if statement.strip():
                    self.conn.execute(statement)
        self._ready = True

    def _build_lexicon(self) -> None:
        """Stores written before BM25 ranking kept a tsvector column: index their chunks once."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._t("schema"),))
            if self._table_exists("terms"):  # another process did it while we waited
                return
            cur.execute(
                f"ALTER TABLE {self._t('chunks')} DROP COLUMN IF EXISTS tsv,"
                " ADD COLUMN IF NOT EXISTS n_tokens INTEGER NOT NULL DEFAULT 0"
            )
            for statement in _LEXICON.format(p=self.prefix).split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"SELECT 1 FROM {self._t('corpus')} FOR UPDATE")
            rows = cur.execute(
                f"SELECT id, text, title, section FROM {self._t('chunks')} ORDER BY id"
            ).fetchall()
            # json.dumps as chunk_row writes it, so the section tokens match the SQLite store's.
            tokens = bm25.tokenize_rows([(r[1], r[2], json.dumps(list(r[3]))) for r in rows])
            self._write_terms(cur, [r[0] for r in rows], tokens)
            cur.execute(
                f"UPDATE {self._t('chunks')} c SET n_tokens = v.n FROM unnest(%s::bigint[], %s::integer[]) v(id, n)"
                " WHERE c.id = v.id",
                ([r[0] for r in rows], [t.length for t in tokens]),
            )

    def _write_terms(self, cur: Any, chunk_ids: list[int], tokens: list[bm25.RowTokens]) -> None:
        """Write the postings of stored chunks and count them into the corpus row (whose lock
        the caller holds)."""
        with cur.copy(
            f"COPY {self._t('terms')} (term, chunk, {', '.join(_POSITIONS)}) FROM STDIN"
        ) as copy:
            for chunk_id, row in zip(chunk_ids, tokens, strict=True):
                for term, positions in row.positions.items():
                    copy.write_row((term, chunk_id, *positions))
        cur.execute(
            f"UPDATE {self._t('corpus')} SET n_chunks = n_chunks + %s, n_tokens = n_tokens + %s",
            (len(tokens), sum(row.length for row in tokens)),
        )

    def _delete_chunks(self, cur: Any, doc_ids: list[str]) -> None:
        """Delete documents' chunks (their postings go with them) and take them out of the corpus."""
        cur.execute(
            f"WITH gone AS (DELETE FROM {self._t('chunks')} WHERE doc_id = ANY(%s) RETURNING n_tokens)"
            f" UPDATE {self._t('corpus')} SET n_chunks = n_chunks - (SELECT count(*) FROM gone),"
            " n_tokens = n_tokens - (SELECT coalesce(sum(n_tokens), 0) FROM gone)",
            (doc_ids,),
        )

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

    def document_hashes(self, source: str | None = None) -> dict[str, str]:
        if not self._ready:
            return {}
        sql = f"SELECT doc_id, content_hash FROM {self._t('documents')}"
        if source is None:
            return dict(self.conn.execute(sql).fetchall())
        return dict(self.conn.execute(sql + " WHERE source = %s", (source,)).fetchall())

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        if not self._ready:
            return None
        row = self.conn.execute(
            f"SELECT doc_id, title, content_hash, mtime, meta, allowed, n_chunks, source, path"
            f" FROM {self._t('documents')} WHERE doc_id = %s",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        return DocumentRecord(*row[:5], tuple(row[5]), *row[6:])

    def write_documents(
        self, items: Sequence[tuple[DocumentRecord, list[Chunk], np.ndarray]]
    ) -> None:
        if not items:
            return
        self._ensure_schema(int(np.asarray(items[0][2]).shape[-1]))
        # The whole batch in a few statements (per-document round trips cost more than the
        # writes); a document given twice keeps its last version, as one-by-one replacing would.
        latest = list(
            {record.doc_id: (record, chunks, vectors) for record, chunks, vectors in items}.values()
        )
        doc_ids = [record.doc_id for record, _, _ in latest]
        rows = [chunk_row(record.doc_id, c) for record, chunks, _ in latest for c in chunks]
        vectors = [v for _, chunks, vs in latest for _, v in zip(chunks, vs, strict=True)]
        # the SQLite store's FTS5 columns (bm25.COLUMNS), the section as chunk_row writes it
        tokens = bm25.tokenize_rows(
            [(c.text, c.title, json.dumps(list(c.section))) for _, cs, _ in latest for c in cs]
        )
        with self.conn.transaction(), self.conn.cursor() as cur:
            # Writers take the corpus row first, so they queue here instead of deadlocking later.
            cur.execute(f"SELECT 1 FROM {self._t('corpus')} FOR UPDATE")
            self._delete_chunks(cur, doc_ids)
            cur.execute(f"DELETE FROM {self._t('documents')} WHERE doc_id = ANY(%s)", (doc_ids,))
            cur.executemany(
                f"INSERT INTO {self._t('documents')} (doc_id, title, content_hash, mtime, meta, allowed, public, n_chunks, indexed_at, source, path)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)",
                [
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
                        record.source,
                        record.path,
                    )
                    for record, chunks, _ in latest
                ],
            )
            # Chunk ids drawn up front: the postings refer to them.
            ids = [
                r[0]
                for r in cur.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    (self._t("chunks"), len(rows)),
                ).fetchall()
            ]
            with cur.copy(
                f"COPY {self._t('chunks')} (id, chunk_id, doc_id, ordinal, text, start_offset, end_offset, section, page, title, embedding, n_tokens) FROM STDIN"
            ) as copy:
                for i, row, v, t in zip(ids, rows, vectors, tokens, strict=True):
                    copy.write_row((i, *row, _vector_literal(v), t.length))
            self._write_terms(cur, ids, tokens)

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        if not self._ready or not doc_ids:
            return 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {self._t('corpus')} FOR UPDATE")
            self._delete_chunks(cur, doc_ids)
            cur.execute(f"DELETE FROM {self._t('documents')} WHERE doc_id = ANY(%s)", (doc_ids,))
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
        phrases = bm25.query_phrases(terms)
        if not phrases:
            return []
        where, params = self._where(filters, principal)
        hits, hit_params = [], []
        for i, phrase in enumerate(phrases):
            sql, values = self._phrase_hits(i, phrase)
            hits.append(sql)
            hit_params += values
        # fts5Bm25Function's arithmetic, term for term (see bm25.py); IDF over the whole corpus.
        k1, b = f"{bm25.K1!r}::float8", f"{bm25.B!r}::float8"
        sql = (
            f"WITH hits AS MATERIALIZED ({' UNION ALL '.join(hits)}),"
            f" corpus AS (SELECT n_chunks::float8 AS n, n_tokens::float8 / n_chunks AS avgdl FROM {self._t('corpus')} WHERE n_chunks > 0),"
            " df AS (SELECT phrase, count(*)::float8 AS n FROM hits GROUP BY phrase),"
            " idf AS (SELECT phrase, CASE WHEN v > 0 THEN v ELSE %s::float8 END AS idf FROM"
            " (SELECT df.phrase, ln((corpus.n - df.n + 0.5::float8) / (df.n + 0.5::float8)) AS v FROM df, corpus) raw)"
            f" SELECT c.chunk_id, sum(idf.idf * ((h.f * ({k1} + 1.0::float8))"
            f" / (h.f + {k1} * (1.0::float8 - {b} + {b} * c.n_tokens / corpus.avgdl)))) AS score"
            f" FROM hits h JOIN idf ON idf.phrase = h.phrase JOIN {self._t('chunks')} c ON c.id = h.chunk"
            f" JOIN {self._t('documents')} d ON d.doc_id = c.doc_id CROSS JOIN corpus"
            f" WHERE {where} GROUP BY c.id, c.chunk_id ORDER BY score DESC, c.id LIMIT %s"
        )
        rows = self.conn.execute(sql, [*hit_params, bm25.IDF_FLOOR, *params, k]).fetchall()
        return [(cid, float(s)) for cid, s in rows]

    def missing_terms(
        self, terms: Sequence[str], filters: Filters, principal: Principal
    ) -> list[str]:
        if not self._ready:
            return list(terms)
        where, params = self._where(filters, principal)
        missing = []
        for term in terms:
            phrases = bm25.query_phrases([term])
            if not phrases:
                missing.append(term)
                continue
            hits, values = self._phrase_hits(0, phrases[0])
            row = self.conn.execute(
                f"SELECT 1 FROM ({hits}) h JOIN {self._t('chunks')} c ON c.id = h.chunk"
                f" JOIN {self._t('documents')} d ON d.doc_id = c.doc_id WHERE {where} LIMIT 1",
                [*values, *params],
            ).fetchone()
            if row is None:
                missing.append(term)
        return missing

    def _phrase_hits(self, index: int, phrase: tuple[str, ...]) -> tuple[str, list[Any]]:
        """SQL for (phrase, chunk, f): the chunks holding phrase, f its column-weighted count there.

        A phrase of several tokens occurs where its tokens stand at consecutive positions of one
        column, as in FTS5.
        """
        joins = "".join(
            f" JOIN {self._t('terms')} p{j} ON p{j}.chunk = p0.chunk AND p{j}.term = %s"
            for j in range(1, len(phrase))
        )
        counts = []
        for column in _POSITIONS:
            if len(phrase) == 1:
                counts.append(f"cardinality(p0.{column})")
            else:
                follows = " AND ".join(
                    f"x + {j} = ANY(p{j}.{column})" for j in range(1, len(phrase))
                )
                counts.append(f"(SELECT count(*) FROM unnest(p0.{column}) x WHERE {follows})")
        weighted = " + ".join(f"{w!r}::float8 * h{i}" for i, w in enumerate(bm25.WEIGHTS))
        sql = (
            f"SELECT {index} AS phrase, chunk, {weighted} AS f FROM (SELECT p0.chunk,"
            f" {', '.join(f'{c} AS h{i}' for i, c in enumerate(counts))}"
            f" FROM {self._t('terms')} p0{joins} WHERE p0.term = %s) s WHERE h0 + h1 + h2 > 0"
        )
        return sql, [*phrase[1:], phrase[0]]

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
            f"SELECT c.chunk_id, c.doc_id, c.ordinal, c.text, c.start_offset, c.end_offset, c.section, c.page, c.title, d.meta,"
            " d.source, d.path"
            f" FROM {self._t('chunks')} c JOIN {self._t('documents')} d ON d.doc_id = c.doc_id WHERE c.chunk_id = ANY(%s)",
            (list(chunk_ids),),
        ).fetchall()
        return {r[0]: Chunk(*r[:6], tuple(r[6]), *r[7:]) for r in rows}

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
        for table in ("terms", "corpus", "chunks", "documents", "meta", "sources"):
            self.conn.execute(f"DROP TABLE IF EXISTS {self._t(table)} CASCADE")
        self._ready = False

    def close(self) -> None:
        self.conn.close()


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
