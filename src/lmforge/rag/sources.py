"""Sources: which folder a document came from, and which files of that folder are read.

A store holds documents from any number of *sources*. A source is a folder (recorded by its
absolute path) with a name: the folder's own name by default, or the ``--source NAME`` the user
gives. A document's identity is (source name, path relative to the source's folder), so two
folders that both hold ``notes.md`` give two documents, and ``--prune`` removes documents of the
source being indexed only.

Indexing a folder inside a known source (or a single file, whose folder is its parent) adds to
that source: ``lmforge index docs/`` then ``lmforge index docs/guide/intro.md`` updates one
document instead of adding a copy under a second name.

`walk` lists the files of a folder. Symbolic links that lead outside the folder are reported,
not followed, unless ``follow_links`` is set: a planted ``link.txt -> /etc/passwd`` must not make
any readable file readable through the store. Links inside it are followed once; a directory
already visited is not entered again, so link cycles end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError


def document_key(source: str, path: str) -> str:
    """The store's key for a document: its source name and its path inside that source."""
    return f"{source}/{path}"


@dataclass(frozen=True)
class Source:
    """A named folder of documents; ``prefix`` is where the indexed PATH lies inside ``root``
    ("" for the whole folder, "guide/" for a subfolder, "guide/intro.md" for one file)."""

    name: str
    root: Path
    prefix: str = ""
    is_file: bool = False

    def covers(self, key: str) -> bool:
        """Whether a document of this source (by its `document_key`) lies under the indexed
        PATH: what ``--prune`` may remove."""
        path = key.removeprefix(f"{self.name}/")
        if self.is_file:
            return path == self.prefix
        return path.startswith(self.prefix)


def resolve_source(path: Path, known: Mapping[str, str], name: str | None = None) -> Source:
    """The source a PATH given to ``lmforge index`` belongs to.

    ``known`` maps the store's source names to their folders. With ``name``, that source (its
    folder re-pointed to PATH's folder when PATH lies outside it: the folder moved). Without, the
    known source whose folder holds PATH, else a new source named after PATH's folder (with
    ``-2``, ``-3``... when the name is taken).
    """
    target = path.resolve()
    is_file = target.is_file()
    folder = target.parent if is_file else target
    if name is not None:
        name = name.strip()
        if not name or any(ch in name for ch in "/\\\0\n"):
            raise LmforgeError(f"bad --source {name!r}: a non-empty name without '/'")
        root = Path(known[name]) if name in known else None
        if root is None or not _is_within(target, root):
            root = folder
        return _source(name, root, target, is_file)
    holders = [(n, Path(r)) for n, r in known.items() if _is_within(target, Path(r))]
    if holders:
        # the innermost folder wins: a source may have been made from a subfolder of another
        holder, root = max(holders, key=lambda item: len(item[1].parts))
        return _source(holder, root, target, is_file)
    return _source(free_name(folder.name, known), folder, target, is_file)


def free_name(base: str, taken: Iterable[str]) -> str:
    """``base`` (a folder's name), or ``base-2``, ``base-3``... if a source already has it."""
    taken = set(taken)
    base = base or "root"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def legacy_sources(
    documents: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Sources for a store written before they existed, whose document ids were paths relative
    to the indexed folder and whose metadata recorded that folder as ``root``.

    Returns (source name -> folder, old doc_id -> (source name, path)); the stores rename each
    document to `document_key` of its pair.
    """
    documents = sorted(documents, key=lambda item: item[0])
    names: dict[str, str] = {}  # folder -> source name
    for root in sorted({str(meta.get("root") or "") for _, meta in documents}):
        names[root] = free_name(Path(root).name, names.values())
    plan = {doc_id: (names[str(meta.get("root") or "")], doc_id) for doc_id, meta in documents}
    return {name: root for root, name in names.items()}, plan


def _source(name: str, root: Path, target: Path, is_file: bool) -> Source:
    prefix = target.relative_to(root).as_posix()
    if prefix == ".":
        prefix = ""
    elif not is_file:
        prefix += "/"
    return Source(name, root, prefix, is_file)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def walk(
    source: Source,
    select: Callable[[str, str], bool],
    skipped: list[tuple[str, str]],
    follow_links: bool = False,
) -> Iterator[tuple[Path, str]]:
    """(file, relative path) for each file under the indexed PATH of ``source`` that
    ``select(relative path, name)`` accepts, in a stable order. Links not followed are appended
    to ``skipped`` as (path, reason). Hidden files and folders are skipped."""
    if source.is_file:
        yield source.root / source.prefix, source.prefix
        return
    start = source.root / source.prefix.rstrip("/") if source.prefix else source.root
    yield from _walk_dir(source.root, start, select, follow_links, skipped, visited=set())


def _walk_dir(
    root: Path,
    directory: Path,
    select: Callable[[str, str], bool],
    follow_links: bool,
    skipped: list[tuple[str, str]],
    visited: set[tuple[int, int]],
) -> Iterator[tuple[Path, str]]:
    # Paths stay logical (as reached from ``root``): that is what gets stored and reported.
    try:
        info = directory.stat()
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        skipped.append((str(directory), f"unreadable folder: {exc.strerror or exc}"))
        return
    if (info.st_dev, info.st_ino) in visited:
        return  # a link led back to a folder already listed: a cycle, or a second way in
    visited.add((info.st_dev, info.st_ino))
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            real = path.resolve()
            if not real.exists():
                skipped.append((str(path), f"broken symbolic link to {os.readlink(path)}"))
                continue
            if not follow_links and not _is_within(real, root):
                reason = f"symbolic link to {real}, outside {root} (not followed; --follow-links follows it)"
                skipped.append((str(path), reason))
                continue
        if entry.is_dir():  # a link to a folder that passed the check above is entered too
            yield from _walk_dir(root, path, select, follow_links, skipped, visited)
        elif entry.is_file():
            rel = path.relative_to(root).as_posix()
            if select(rel, entry.name):
                yield path, rel
