"""Incremental ingestion: files -> loaded documents -> chunks -> vectors -> store.

A document's identity is its path relative to the PATH it was indexed under. A content hash (of
the file bytes and the ingestion settings) makes re-indexing an unchanged file a no-op; a changed
file has its chunks replaced in one transaction; ``prune`` removes documents whose files are gone.
Documents are embedded in batches and committed batch by batch, so an interrupted run keeps what
it committed and a re-run finishes the rest. Bad files are skipped and listed in the report.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.rag.chunker import Chunker
from lmforge.rag.embedder import Embedder, EmbeddingCache, embed_with_cache
from lmforge.rag.loaders import SUPPORTED_SUFFIXES, load_file
from lmforge.rag.stores.base import Store
from lmforge.rag.types import Chunk, DocumentRecord

ACL_KEYS = ("allowed_groups", "groups", "acl")


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks: int = 0
    embedded: int = 0  # chunks that went through the model (the rest came from the cache)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"indexed {len(self.added)} new, {len(self.updated)} changed, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.skipped)} skipped; {self.chunks} chunks "
            f"({self.embedded} embedded) in {self.seconds:.1f}s"
        ]
        if self.skipped:
            lines.append("skipped files:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Pending:
    record: DocumentRecord
    chunks: list[Chunk]
    is_new: bool


def iter_files(
    root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[tuple[Path, str]]:
    """(file, doc_id) for every supported file under ``root``, in a stable order.

    ``include``/``exclude`` are globs matched against the relative path and the file name.
    """
    if root.is_file():
        yield root, root.name
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if include and not _glob_any(rel, name, include):
                continue
            if exclude and _glob_any(rel, name, exclude):
                continue
            if not include and not _supported(name):
                continue
            yield path, rel


def _glob_any(rel: str, name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _supported(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(".rst.txt") or Path(lower).suffix in SUPPORTED_SUFFIXES


def parse_meta(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings (from ``--meta``) into a dict; numbers and booleans typed."""
    from lmforge.rag.filters import coerce

    meta: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LmforgeError(f"bad --meta {item!r}: use key=value")
        meta[key.strip()] = coerce(value)
    return meta


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class Indexer:
    """Index files into a store. Configure once, then `run(paths)` as often as you like."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        chunker: Chunker | None = None,
        cache: EmbeddingCache | None = None,
        meta: dict[str, Any] | None = None,
        allowed_groups: Sequence[str] | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        batch_chunks: int = 256,
        progress: bool = True,
    ):
        self.store = store
        self.embedder = embedder
        self.chunker = chunker or Chunker.for_embedder(embedder)
        self.cache = cache
        self.meta = dict(meta or {})
        self.allowed_groups = list(allowed_groups) if allowed_groups is not None else None
        self.include = list(include)
        self.exclude = list(exclude)
        self.batch_chunks = max(1, batch_chunks)
        self.progress = progress

    def _settings_fingerprint(self) -> str:
        """Ingestion settings that change what is stored: changing any of them re-indexes."""
        return json.dumps(
            {
                "meta": self.meta,
                "acl": self.allowed_groups,
                "chunk": [self.chunker.max_tokens, self.chunker.overlap_tokens],
                "embedder": self.embedder.model_id,
                "version": 1,
            },
            sort_keys=True,
            default=str,
        )

    def run(self, paths: Sequence[str | Path], prune: bool = False) -> IndexReport:
        from tqdm import tqdm

        t0 = time.perf_counter()
        report = IndexReport()
        roots = [Path(p) for p in paths]
        for root in roots:
            if not root.exists():
                raise LmforgeError(f"{root}: no such file or directory")
        files = [
            (root, path, doc_id)
            for root in roots
            for path, doc_id in iter_files(root, self.include, self.exclude)
        ]
        known = self.store.document_hashes()
        fingerprint = self._settings_fingerprint()
        seen: set[str] = set()
        pending: list[_Pending] = []
        bar = tqdm(
            total=len(files),
            unit="doc",
            disable=not self.progress,
            desc="indexing",
            dynamic_ncols=True,
        )
        try:
            for root, path, doc_id in files:
                seen.add(doc_id)
                try:
                    item = self._prepare(root, path, doc_id, fingerprint, known)
                except LmforgeError as exc:
                    report.skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                    item = None
                except Exception as exc:  # a loader bug on one odd file must not stop the batch
                    report.skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
                    item = None
                if item is None:
                    if doc_id in known and not any(s[0] == str(path) for s in report.skipped):
                        report.unchanged.append(doc_id)
                    bar.update(1)
                    continue
                pending.append(item)
                if sum(len(p.chunks) for p in pending) >= self.batch_chunks:
                    self._flush(pending, report)
                    bar.update(len(pending))
                    pending = []
                    self._postfix(bar, report, t0)
            self._flush(pending, report)
            bar.update(len(pending))
            self._postfix(bar, report, t0)
        finally:
            bar.close()
        if prune:
            root_keys = {str(r.resolve()) for r in roots}
            gone = [
                doc_id
                for doc_id in known
                if doc_id not in seen and (self._root_of(doc_id) in root_keys)
            ]
            if gone:
                self.store.delete_documents(gone)
            report.removed = sorted(gone)
        report.seconds = time.perf_counter() - t0
        return report

    def _root_of(self, doc_id: str) -> str | None:
        record = self.store.get_document(doc_id)
        return record.meta.get("root") if record else None

    @staticmethod
    def _postfix(bar, report: IndexReport, t0: float) -> None:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        docs = len(report.added) + len(report.updated)
        bar.set_postfix_str(f"{docs / elapsed:.1f} docs/s, {report.chunks / elapsed:.1f} chunks/s")

    def _prepare(
        self, root: Path, path: Path, doc_id: str, fingerprint: str, known: dict[str, str]
    ) -> _Pending | None:
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError as exc:
            raise LmforgeError(f"{path}: unreadable: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data + b"\0" + fingerprint.encode()).hexdigest()
        if known.get(doc_id) == digest:
            return None
        doc = load_file(path)
        meta: dict[str, Any] = dict(doc.meta)
        acl = self.allowed_groups if self.allowed_groups is not None else []
        if self.allowed_groups is None:
            for key in ACL_KEYS:
                if key in meta:
                    acl = _as_list(meta.pop(key))
                    break
        for key in ACL_KEYS:
            meta.pop(key, None)
        meta.update(self.meta)
        meta.update(
            {
                "path": doc_id,
                "root": str(root.resolve()),
                "format": path.suffix.lower().lstrip("."),
                "modified": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )
        title = str(meta.get("title") or doc.title)
        doc.title = title
        chunks = self.chunker.run(doc, doc_id)
        if not chunks:
            raise LmforgeError(f"{path}: empty document (no text)")
        record = DocumentRecord(doc_id, title, digest, stat.st_mtime, meta, tuple(acl), len(chunks))
        return _Pending(record, chunks, doc_id not in known)

    def _flush(self, pending: list[_Pending], report: IndexReport) -> None:
        if not pending:
            return
        texts = [c.embed_text() for p in pending for c in p.chunks]
        vectors, embedded = embed_with_cache(self.embedder, texts, self.cache)
        self.store.check_embedder(self.embedder.model_id, vectors.shape[1])
        items = []
        offset = 0
        for p in pending:
            items.append((p.record, p.chunks, vectors[offset : offset + len(p.chunks)]))
            offset += len(p.chunks)
        self.store.write_documents(items)
        for p in pending:
            (report.added if p.is_new else report.updated).append(p.record.doc_id)
        report.chunks += len(texts)
        report.embedded += embedded
