"""The embedded store: one directory holding a SQLite database (WAL) and derived vector files.

SQLite is the system of record for documents, chunks, metadata, access lists and embeddings.
Lexical search is FTS5 with BM25 ranking (Porter stemming); dense search scans a memory-mapped
matrix, or asks a FAISS HNSW index once the collection is large (see `vectors.py`). Every write is
one transaction, so a crash (even ``kill -9``) leaves the last committed state, and re-running the
indexer completes the rest.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rag.filters import Condition, Filters, Principal
from lmforge.rag.sources import document_key, legacy_sources
from lmforge.rag.stores import bm25
from lmforge.rag.stores.base import FILTER_COLUMNS, chunk_row
from lmforge.rag.stores.vectors import VectorIndex
from lmforge.rag.text import query_terms
from lmforge.rag.types import Chunk, DocumentRecord

# its own statement too: a store migrated from before sources creates it inside the migration
SOURCES_TABLE = "CREATE TABLE IF NOT EXISTS sources (name TEXT PRIMARY KEY, root TEXT NOT NULL, updated_at REAL)"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    mtime REAL,
    meta TEXT NOT NULL DEFAULT '{{}}',
    allowed TEXT NOT NULL DEFAULT '[]',
    public INTEGER NOT NULL DEFAULT 1,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL,
    source TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT ''
);
{SOURCES_TABLE};
CREATE TABLE IF NOT EXISTS doc_acl (doc_id TEXT NOT NULL, principal TEXT NOT NULL, PRIMARY KEY (principal, doc_id));
CREATE INDEX IF NOT EXISTS doc_acl_doc ON doc_acl(doc_id);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source, path);
-- every search asks "is any document private?"; this keeps the answer O(1) at any size
CREATE INDEX IF NOT EXISTS documents_private ON documents(doc_id) WHERE public = 0;
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    section TEXT NOT NULL DEFAULT '[]',
    page INTEGER,
    title TEXT NOT NULL DEFAULT '',
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    {", ".join(bm25.COLUMNS)}, content='chunks', content_rowid='rowid', tokenize='{bm25.TOKENIZER}'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, title, section) VALUES (new.rowid, new.text, new.title, new.section);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, title, section) VALUES ('delete', old.rowid, old.text, old.title, old.section);
END;
"""

# BM25 column weights (`bm25.WEIGHTS`): body text counts fully, the title and section path
# (repeated on every chunk of a document) a little.
_BM25 = f"bm25(chunks_fts, {', '.join(map(str, bm25.WEIGHTS))})"


class SQLiteStore:
    def __init__(self, path: str | Path, ann_threshold: int = 20000, create: bool = True):
        self.directory = Path(path)
        if self.directory.exists() and not self.directory.is_dir():
            raise LmforgeError(f"{path}: store must be a directory (or a postgresql:// URL)")
        if not self.directory.exists():
            if not create:
                raise LmforgeError(f"{path}: no such store")
            self.directory.mkdir(parents=True)
        self.url = str(self.directory)
        self.db_path = self.directory / "store.sqlite"
        if not create and not self.db_path.exists():
            raise LmforgeError(
                f"{path}: not an lmforge store (no store.sqlite); run `lmforge index` first"
            )
        try:
            self.conn = sqlite3.connect(
                str(self.db_path), timeout=60, check_same_thread=False, isolation_level=None
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise LmforgeError(f"{self.db_path}: cannot open store: {exc}") from exc
        self.ann_threshold = ann_threshold
        self._vectors: VectorIndex | None = None
        self._lock = threading.RLock()

    # -- bookkeeping --
    def _meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _migrate(self) -> None:
        """Bring a store written by an earlier release up to this schema, in place, once."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(documents)")}
        if not columns or "source" in columns:
            return  # a new store, or already current
        # Before sources, a document's id was its path relative to the folder indexed, which
        # its metadata recorded as "root": name those folders and key documents by (source, path).
        roots, plan = legacy_sources(
            (doc_id, json.loads(meta))
            for doc_id, meta in self.conn.execute("SELECT doc_id, meta FROM documents")
        )
        renames = [(document_key(*pair), *pair, old) for old, pair in plan.items()]
        cur = self.conn.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")  # ids change in documents and chunks together
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute("ALTER TABLE documents ADD COLUMN source TEXT NOT NULL DEFAULT ''")
            cur.execute("ALTER TABLE documents ADD COLUMN path TEXT NOT NULL DEFAULT ''")
            cur.execute(SOURCES_TABLE)
            cur.executemany(
                "INSERT INTO sources VALUES (?, ?, ?)",
                [(name, root, time.time()) for name, root in roots.items()],
            )
            # Through a temporary id ("\x01" + new): a new id may equal another document's old one.
            for table in ("documents", "chunks", "doc_acl"):
                cur.executemany(
                    f"UPDATE {table} SET doc_id = char(1) || ? WHERE doc_id = ?",
                    [(new, old) for new, _, _, old in renames],
                )
                cur.execute(
                    f"UPDATE {table} SET doc_id = substr(doc_id, 2) WHERE doc_id GLOB char(1) || '*'"
                )
            cur.executemany(
                "UPDATE documents SET source = ?, path = ? WHERE doc_id = ?",
                [(source, path, new) for new, source, path, _ in renames],
            )
            self._bump(cur)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute("PRAGMA foreign_keys=ON")

    def sources(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT name, root FROM sources ORDER BY name"))

    def set_source(self, name: str, root: str) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET root = excluded.root,"
                " updated_at = excluded.updated_at",
                (name, root, time.time()),
            )

    def generation(self) -> int:
        return int(self._meta_get("generation") or 0)

    def check_embedder(self, model_id: str, dim: int) -> None:
        stored = self._meta_get("embedder")
        if stored is None:
            with self._lock:
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('embedder', ?)",
                    (json.dumps({"model_id": model_id, "dim": dim}),),
                )
            return
        info = json.loads(stored)
        if info["model_id"] != model_id or info["dim"] != dim:
            raise LmforgeError(
                f"{self.url}: store was built with embedder {info['model_id']} ({info['dim']}-d), not {model_id} ({dim}-d)"
            )

    def embedder_id(self) -> str | None:
        stored = self._meta_get("embedder")
        return json.loads(stored)["model_id"] if stored else None

    def document_hashes(self, source: str | None = None) -> dict[str, str]:
        if source is None:
            return dict(self.conn.execute("SELECT doc_id, content_hash FROM documents"))
        return dict(
            self.conn.execute(
                "SELECT doc_id, content_hash FROM documents WHERE source = ?", (source,)
            )
        )

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        row = self.conn.execute(
            "SELECT doc_id, title, content_hash, mtime, meta, allowed, n_chunks, source, path"
            " FROM documents WHERE doc_id=?",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        return DocumentRecord(
            *row[:4], json.loads(row[4]), tuple(json.loads(row[5])), row[6], row[7], row[8]
        )

    # -- writes: one transaction per call --
    def write_documents(
        self, items: Sequence[tuple[DocumentRecord, list[Chunk], np.ndarray]]
    ) -> None:
        with self._lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for record, chunks, vectors in items:
                    self._delete(cur, [record.doc_id])
                    cur.execute(
                        "INSERT INTO documents (doc_id, title, content_hash, mtime, meta, allowed, public, n_chunks, indexed_at, source, path)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            record.doc_id,
                            record.title,
                            record.content_hash,
                            record.mtime,
                            json.dumps(record.meta, default=str),
                            json.dumps(list(record.allowed)),
                            0 if record.allowed else 1,
                            len(chunks),
                            time.time(),
                            record.source,
                            record.path,
                        ),
                    )
                    cur.executemany(
                        "INSERT INTO doc_acl (doc_id, principal) VALUES (?, ?)",
                        [(record.doc_id, p) for p in dict.fromkeys(record.allowed)],
                    )
                    cur.executemany(
                        "INSERT INTO chunks (chunk_id, doc_id, ordinal, text, start, end, section, page, title, embedding)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                *chunk_row(record.doc_id, c),
                                np.asarray(v, dtype=np.float32).tobytes(),
                            )
                            for c, v in zip(chunks, vectors, strict=True)
                        ],
                    )
                self._bump(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        with self._lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                n = self._delete(cur, doc_ids)
                self._bump(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return n

    def _delete(self, cur: sqlite3.Cursor, doc_ids: list[str]) -> int:
        n = 0
        for doc_id in doc_ids:
            cur.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            cur.execute("DELETE FROM doc_acl WHERE doc_id=?", (doc_id,))
            n += cur.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,)).rowcount
        return n

    def _bump(self, cur: sqlite3.Cursor) -> None:
        cur.execute(
            "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- filters and access control as SQL --
    def _where(self, filters: Filters, principal: Principal) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        tokens = principal.tokens
        if tokens:
            marks = ",".join("?" * len(tokens))
            clauses.append(
                f"(d.public = 1 OR EXISTS (SELECT 1 FROM doc_acl a WHERE a.doc_id = d.doc_id AND a.principal IN ({marks})))"
            )
            params += tokens
        else:
            clauses.append("d.public = 1")
        for cond in filters.conditions:
            sql, values = _condition_sql(cond)
            clauses.append(sql)
            params += values
        return " AND ".join(clauses), params

    def _needs_restriction(self, filters: Filters) -> bool:
        return (
            bool(filters)
            or self.conn.execute("SELECT 1 FROM documents WHERE public = 0 LIMIT 1").fetchone()
            is not None
        )

    # -- search --
    def lexical_search(
        self, query: str, k: int, filters: Filters, principal: Principal
    ) -> list[tuple[str, float]]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        if not self._needs_restriction(filters):
            # Every chunk may be returned: rank inside FTS5 alone and join only the top k. Joining
            # every match first costs more than BM25 itself (2.7x slower at 100k chunks).
            sql = (
                f"SELECT c.chunk_id, -f.score FROM (SELECT rowid, {_BM25} AS score FROM chunks_fts"
                " WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid"
                " ORDER BY f.score"
            )
            return [(cid, float(s)) for cid, s in self.conn.execute(sql, [match, k])]
        where, params = self._where(filters, principal)
        sql = (
            f"SELECT c.chunk_id, -{_BM25} AS score FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid"
            f" JOIN documents d ON d.doc_id = c.doc_id WHERE chunks_fts MATCH ? AND {where} ORDER BY {_BM25} LIMIT ?"
        )
        return [(cid, float(s)) for cid, s in self.conn.execute(sql, [match, *params, k])]

    def missing_terms(
        self, terms: Sequence[str], filters: Filters, principal: Principal
    ) -> list[str]:
        restricted = self._needs_restriction(filters)
        where, params = self._where(filters, principal) if restricted else ("1", [])
        missing = []
        for term in terms:
            phrase = '"' + term.replace('"', " ") + '"'  # one FTS5 phrase, tokenized as indexed
            row = self.conn.execute(
                "SELECT 1 FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid"
                f" JOIN documents d ON d.doc_id = c.doc_id WHERE chunks_fts MATCH ? AND {where} LIMIT 1"
                if restricted
                else "SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT 1",
                [phrase, *params],
            ).fetchone()
            if row is None:
                missing.append(term)
        return missing

    def vectors(self) -> VectorIndex:
        with self._lock:
            info = self._meta_get("embedder")
            dim = json.loads(info)["dim"] if info else 384
            if self._vectors is None or self._vectors.dim != dim:
                self._vectors = VectorIndex(self.directory, dim, ann_threshold=self.ann_threshold)
            self._vectors.refresh(self.conn, self.generation())
            return self._vectors

    def dense_search(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters,
        principal: Principal,
        use_ann: bool | None = None,
    ) -> list[tuple[str, float]]:
        index = self.vectors()
        allowed = None
        if self._needs_restriction(filters):
            where, params = self._where(filters, principal)
            allowed = np.fromiter(
                (
                    r
                    for (r,) in self.conn.execute(
                        f"SELECT c.rowid FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE {where}",
                        params,
                    )
                ),
                dtype=np.int64,
            )
        hits = index.search(vector, k, allowed, use_ann=use_ann)
        if not hits:
            return []
        ids = dict(self._rowid_to_chunk_id([r for r, _ in hits]))
        return [(ids[r], s) for r, s in hits if r in ids]

    def _rowid_to_chunk_id(self, rowids: list[int]) -> list[tuple[int, str]]:
        marks = ",".join("?" * len(rowids))
        return self.conn.execute(
            f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({marks})", rowids
        ).fetchall()

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        ids = list(dict.fromkeys(chunk_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.conn.execute(
                "SELECT c.chunk_id, c.doc_id, c.ordinal, c.text, c.start, c.end, c.section, c.page, c.title, d.meta,"
                " d.source, d.path"
                f" FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.chunk_id IN ({','.join('?' * len(part))})",
                part,
            )
            for r in rows:
                out[r[0]] = Chunk(
                    *r[:6], tuple(json.loads(r[6])), r[7], r[8], json.loads(r[9]), r[10], r[11]
                )
        return out

    def get_embeddings(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        ids = list(dict.fromkeys(chunk_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for cid, blob in self.conn.execute(
                f"SELECT chunk_id, embedding FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})",
                part,
            ):
                out[cid] = np.frombuffer(blob, dtype=np.float32)
        return out

    def stats(self) -> dict:
        docs, chunks = self.conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
        ).fetchone()
        return {
            "store": self.url,
            "kind": "sqlite",
            "documents": docs,
            "chunks": chunks,
            "embedder": self.embedder_id(),
        }

    def check_integrity(self) -> list[str]:
        """Problems found (empty when consistent): SQLite's own check, chunk counts, the FTS index."""
        problems = []
        result = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"sqlite: {result}")
        for doc_id, expected, actual in self.conn.execute(
            "SELECT d.doc_id, d.n_chunks, (SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id) FROM documents d"
        ):
            if expected != actual:
                problems.append(f"{doc_id}: {actual} chunks, expected {expected}")
        orphans = self.conn.execute(
            "SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.doc_id = c.doc_id WHERE d.doc_id IS NULL"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} chunks without a document")
        try:
            self.conn.execute(
                "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as exc:
            problems.append(f"fts: {exc}")
        return problems

    def close(self) -> None:
        self.conn.close()


def _condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """SQL for one filter condition on the joined documents (d) and chunks (c) rows."""
    column = FILTER_COLUMNS.get(cond.key)
    path = "$." + '"' + cond.key + '"'
    if cond.op in ("eq", "in"):
        values = cond.value if cond.op == "in" else [cond.value]
        values = [_sql_value(v) for v in values]
        marks = ",".join("?" * len(values))
        if column:
            return f"CAST({column} AS TEXT) IN ({marks})", [str(v) for v in values]
        # Scalars compare as text (so 2020 matches "2020"); a list matches if any element does.
        return (
            f"(CASE json_type(d.meta, ?) WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(d.meta, ?) j"
            f" WHERE CAST(j.value AS TEXT) IN ({marks})) ELSE CAST(json_extract(d.meta, ?) AS TEXT) IN ({marks}) END)",
            [path, path, *[str(v) for v in values], path, *[str(v) for v in values]],
        )
    op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[cond.op]
    target = column or "json_extract(d.meta, ?)"
    params = [] if column else [path]
    return f"({target} IS NOT NULL AND {target} {op} ?)", [*params, *params, _sql_value(cond.value)]


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    return value
