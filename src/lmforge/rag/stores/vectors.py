"""Dense search over the store's embeddings: an exact scan of a memory-mapped matrix, and a FAISS
HNSW index once a collection is large.

Both are *derived* files next to the SQLite database, never the system of record. They are keyed
by chunk rowid; rowids only grow (AUTOINCREMENT), so bringing the files up to date after an ingest
means appending the new rows and masking rows whose chunks were deleted ("tombstones"). When
tombstones pass a quarter of the matrix, the files are rebuilt. A crash mid-update leaves at worst
a longer data file than the header says, which the next refresh overwrites.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np


class VectorIndex:
    def __init__(
        self,
        directory: Path,
        dim: int,
        ann_threshold: int = 20000,
        ef_search: int = 96,
        hnsw_m: int = 32,
    ):
        self.directory = directory
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.ef_search = ef_search
        self.hnsw_m = hnsw_m
        self.data_path = directory / "vectors.f32"
        self.ids_path = directory / "vectors.ids.npy"
        self.header_path = directory / "vectors.json"
        self.hnsw_path = directory / "vectors.hnsw"
        self.generation = -1
        self.matrix: np.ndarray = np.zeros((0, dim), dtype=np.float32)
        self.rowids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.live: np.ndarray = np.zeros(0, dtype=bool)
        self.hnsw = None

    # -- keeping the derived files in step with SQLite --
    def refresh(self, conn: sqlite3.Connection, generation: int) -> None:
        if generation == self.generation:
            return
        header = self._read_header()
        if header is None or header.get("dim") != self.dim:
            self._rebuild(conn, generation)
            return
        n = int(header["n"])
        rowids = np.load(self.ids_path)[:n] if n else np.zeros(0, dtype=np.int64)
        if len(rowids) != n:
            self._rebuild(conn, generation)
            return
        max_rowid = int(header["max_rowid"])
        live_ids = np.fromiter(
            (r for (r,) in conn.execute("SELECT rowid FROM chunks ORDER BY rowid")), dtype=np.int64
        )
        live = np.isin(rowids, live_ids, assume_unique=True)
        new_rows = conn.execute(
            "SELECT rowid, embedding FROM chunks WHERE rowid > ? ORDER BY rowid", (max_rowid,)
        ).fetchall()
        dead = int((~live).sum())
        if (dead > 0.25 * max(n, 1) and dead > 1000) or (len(live_ids) == 0 and n):
            self._rebuild(conn, generation)
            return
        if new_rows:
            with open(self.data_path, "r+b" if self.data_path.exists() else "wb") as f:
                f.seek(n * self.dim * 4)
                f.write(b"".join(blob for _, blob in new_rows))
                f.truncate()
            rowids = np.concatenate([rowids, np.array([r for r, _ in new_rows], dtype=np.int64)])
            live = np.concatenate([live, np.ones(len(new_rows), dtype=bool)])
            n = len(rowids)
            max_rowid = int(rowids[-1])
            self._write_ids(rowids)
        self._write_header(
            {"dim": self.dim, "n": n, "max_rowid": max_rowid, "generation": generation}
        )
        self._load(rowids, live, generation, appended=len(new_rows))

    def _rebuild(self, conn: sqlite3.Connection, generation: int) -> None:
        tmp = self.data_path.with_suffix(".tmp")
        rowids = []
        with open(tmp, "wb") as f:
            for rowid, blob in conn.execute("SELECT rowid, embedding FROM chunks ORDER BY rowid"):
                f.write(blob)
                rowids.append(rowid)
        os.replace(tmp, self.data_path)
        ids = np.array(rowids, dtype=np.int64)
        self._write_ids(ids)
        self._write_header(
            {
                "dim": self.dim,
                "n": len(ids),
                "max_rowid": int(ids[-1]) if len(ids) else 0,
                "generation": generation,
            }
        )
        self.hnsw_path.unlink(missing_ok=True)
        self.hnsw = None
        self._load(ids, np.ones(len(ids), dtype=bool), generation, appended=None)

    def _load(
        self, rowids: np.ndarray, live: np.ndarray, generation: int, appended: int | None
    ) -> None:
        n = len(rowids)
        self.matrix = (
            np.memmap(self.data_path, dtype=np.float32, mode="r", shape=(n, self.dim))
            if n
            else np.zeros((0, self.dim), np.float32)
        )
        self.rowids, self.live, self.generation = rowids, live, generation
        if n >= self.ann_threshold:
            self._update_hnsw(appended)
        else:
            self.hnsw = None

    def _update_hnsw(self, appended: int | None) -> None:
        import faiss

        n = len(self.rowids)
        if self.hnsw is None and self.hnsw_path.exists():
            try:
                self.hnsw = faiss.read_index(str(self.hnsw_path))
            except RuntimeError:
                self.hnsw = None
        if self.hnsw is not None and self.hnsw.ntotal > n:  # files rebuilt under us
            self.hnsw = None
        if self.hnsw is None:
            self.hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.hnsw.hnsw.efConstruction = 80
        if self.hnsw.ntotal < n:
            start = self.hnsw.ntotal
            for i in range(start, n, 20000):
                self.hnsw.add(np.ascontiguousarray(self.matrix[i : min(n, i + 20000)]))
            tmp = self.hnsw_path.with_suffix(".tmp")
            faiss.write_index(self.hnsw, str(tmp))
            os.replace(tmp, self.hnsw_path)

    def _read_header(self) -> dict | None:
        try:
            header = json.loads(self.header_path.read_text())
        except (OSError, ValueError):
            return None
        if not self.data_path.exists() or not self.ids_path.exists():
            return None
        if self.data_path.stat().st_size < int(header.get("n", 0)) * self.dim * 4:
            return None
        return header

    def _write_ids(self, ids: np.ndarray) -> None:
        tmp = self.ids_path.with_name("vectors.ids.tmp.npy")
        np.save(tmp, ids)
        os.replace(tmp, self.ids_path)

    def _write_header(self, header: dict) -> None:
        tmp = self.header_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(header))
        os.replace(tmp, self.header_path)

    # -- search --
    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        """Matrix rows of the given (sorted) rowids; rowids not in the matrix are left out."""
        if len(self.rowids) == 0 or len(rowids) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.rowids, rowids), 0, len(self.rowids) - 1)
        return pos[self.rowids[pos] == rowids]

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed_rowids: np.ndarray | None,
        use_ann: bool | None = None,
    ) -> list[tuple[int, float]]:
        """(rowid, cosine) of the best k rows, restricted to ``allowed_rowids`` when given."""
        n = len(self.rowids)
        if n == 0 or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed_rowids is not None:
            positions = self.positions_of(np.sort(allowed_rowids))
        elif not self.live.all():
            positions = np.flatnonzero(self.live)
        else:
            positions = None
        candidates = n if positions is None else len(positions)
        ann = self.hnsw is not None if use_ann is None else (use_ann and self.hnsw is not None)
        # A narrow filter is cheaper (and exact) as a scan of just the allowed rows.
        if ann and candidates > 4 * self.ef_search and (positions is None or candidates > 0.05 * n):
            return self._search_hnsw(q, k, positions)
        if positions is None:
            scores = self.matrix @ q
            rows = np.arange(n)
        else:
            if len(positions) == 0:
                return []
            scores = self.matrix[positions] @ q
            rows = positions
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rowids[rows[i]]), float(scores[i])) for i in top]

    def _search_hnsw(
        self, q: np.ndarray, k: int, positions: np.ndarray | None
    ) -> list[tuple[int, float]]:
        import faiss

        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, k)
        if positions is not None:
            selector = faiss.IDSelectorBatch(positions.astype(np.int64))
            params.sel = selector
        scores, idx = self.hnsw.search(q.reshape(1, -1), k, params=params)
        return [
            (int(self.rowids[i]), float(s))
            for i, s in zip(idx[0], scores[0], strict=True)
            if i >= 0 and self.live[i]
        ]
