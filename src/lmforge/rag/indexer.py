"""Incremental ingestion: files -> loaded documents -> chunks -> vectors -> store.

A document's identity is (source, path): the source is the folder it was indexed from (see
`sources.py`), the path is relative to that folder. A content hash (of the file bytes and the
ingestion settings) makes re-indexing an unchanged file a no-op; a changed file has its chunks
replaced in one transaction; ``prune`` removes documents, of the sources being indexed only, whose
files are gone. Documents are embedded in batches and committed batch by batch, so an interrupted
run keeps what it committed and a re-run finishes the rest. Bad files, and links that lead out of
their folder, are skipped and listed in the report; text in another encoding than UTF-8 is decoded
and the encoding reported.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
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
from lmforge.rag.sources import Source, document_key, resolve_source, walk
from lmforge.rag.stores.base import Store
from lmforge.rag.types import Chunk, DocumentRecord

ACL_KEYS = ("allowed_groups", "groups", "acl")


@dataclass
class IndexReport:
    """What a run did; documents are named by `document_key` (source name / path)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    decoded: list[tuple[str, str]] = field(default_factory=list)  # (path, encoding): not UTF-8
    sources: list[str] = field(default_factory=list)  # "name (folder)" of each source indexed
    chunks: int = 0
    embedded: int = 0  # chunks that went through the model (the rest came from the cache)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"indexed {len(self.added)} new, {len(self.updated)} changed, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.skipped)} skipped; {self.chunks} chunks "
            f"({self.embedded} embedded) in {self.seconds:.1f}s"
        ]
        if self.sources:
            lines.append("source: " + ", ".join(self.sources))
        if self.decoded:
            lines.append("decoded from other encodings than UTF-8:")
            lines += [f"  {path}: {encoding}" for path, encoding in self.decoded]
        if self.skipped:
            lines.append("skipped files:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Pending:
    record: DocumentRecord
    chunks: list[Chunk]
    is_new: bool


def selector(include: Sequence[str] = (), exclude: Sequence[str] = ()):
    """``select(relative path, name)`` for `sources.walk`: globs matched against the relative
    path and the file name; without ``include``, the file types the loaders read."""

    def select(rel: str, name: str) -> bool:
        if include and not _glob_any(rel, name, include):
            return False
        if exclude and _glob_any(rel, name, exclude):
            return False
        return bool(include) or _supported(name)

    return select


def iter_files(
    root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[tuple[Path, str]]:
    """(file, path relative to ``root``) for every supported file under ``root`` (links that
    lead outside it left out), in a stable order."""
    yield from walk(resolve_source(Path(root), {}), selector(include, exclude), skipped=[])


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
        source: str | None = None,
        follow_links: bool = False,
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
        self.source = source
        self.follow_links = follow_links

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
        sources = self._sources([Path(p) for p in paths])
        report.sources = list(dict.fromkeys(f"{s.name} ({s.root})" for s in sources))
        files: dict[str, tuple[Source, Path, str]] = {}  # doc key -> where it is read from
        select = selector(self.include, self.exclude)
        for source in sources:
            for path, rel in walk(source, select, report.skipped, self.follow_links):
                files.setdefault(document_key(source.name, rel), (source, path, rel))
        known = self.store.document_hashes()
        fingerprint = self._settings_fingerprint()
        pending: list[_Pending] = []
        bar = tqdm(
            total=len(files),
            unit="doc",
            disable=not self.progress,
            desc="indexing",
            dynamic_ncols=True,
        )
        try:
            for key, (source, path, rel) in files.items():
                try:
                    item = self._prepare(key, source, path, rel, fingerprint, known, report)
                except LmforgeError as exc:
                    report.skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                    bar.update(1)
                    continue
                except Exception as exc:  # a loader bug on one odd file must not stop the batch
                    report.skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
                    bar.update(1)
                    continue
                if item is None:
                    report.unchanged.append(key)
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
            report.removed = self._prune(sources, files)
        report.seconds = time.perf_counter() - t0
        return report

    def _sources(self, targets: list[Path]) -> list[Source]:
        """The source of each PATH, recorded in the store (new ones, and moved folders)."""
        for target in targets:
            if not target.exists():
                raise LmforgeError(f"{target}: no such file or directory")
        known = self.store.sources()
        sources = [resolve_source(t, known, self.source) for t in targets]
        if self.source is not None and len({s.root for s in sources}) > 1:
            raise LmforgeError(
                f"--source {self.source}: the PATHs lie in different folders; index each folder "
                "with its own --source"
            )
        for source in dict.fromkeys(sources):
            if known.get(source.name) != str(source.root):
                self.store.set_source(source.name, str(source.root))
                known[source.name] = str(source.root)
        return sources

    def _prune(self, sources: list[Source], files: dict[str, Any]) -> list[str]:
        """Documents under the indexed PATHs whose files are gone; other sources are untouched."""
        gone = {
            key
            for source in sources
            for key in self.store.document_hashes(source.name)
            if key not in files and source.covers(key)
        }
        if gone:
            self.store.delete_documents(gone)
        return sorted(gone)

    @staticmethod
    def _postfix(bar, report: IndexReport, t0: float) -> None:
        elapsed = max(time.perf_counter() - t0, 1e-9)
        docs = len(report.added) + len(report.updated)
        bar.set_postfix_str(f"{docs / elapsed:.1f} docs/s, {report.chunks / elapsed:.1f} chunks/s")

    def _prepare(
        self,
        key: str,
        source: Source,
        path: Path,
        rel: str,
        fingerprint: str,
        known: dict[str, str],
        report: IndexReport,
    ) -> _Pending | None:
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError as exc:
            raise LmforgeError(f"{path}: unreadable: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data + b"\0" + fingerprint.encode()).hexdigest()
        if known.get(key) == digest:
            return None
        doc = load_file(path)
        meta: dict[str, Any] = dict(doc.meta)
        acl = self.allowed_groups if self.allowed_groups is not None else []
        if self.allowed_groups is None:
            for k in ACL_KEYS:
                if k in meta:
                    acl = _as_list(meta.pop(k))
                    break
        for k in ACL_KEYS:
            meta.pop(k, None)
        meta.update(self.meta)
        meta.update(
            {
                "path": rel,
                "root": str(source.root),
                "format": path.suffix.lower().lstrip("."),
                "modified": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )
        if meta.get("encoding", "utf-8") != "utf-8":
            report.decoded.append((str(path), meta["encoding"]))
        title = str(meta.get("title") or doc.title)
        doc.title = title
        chunks = self.chunker.run(doc, key)
        if not chunks:
            raise LmforgeError(f"{path}: empty document (no text)")
        record = DocumentRecord(
            key, title, digest, stat.st_mtime, meta, tuple(acl), len(chunks), source.name, rel
        )
        return _Pending(record, chunks, key not in known)

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
