"""Loaders: turn a file (txt, md, rst, html, pdf) into text with its structure and metadata.

Every loader returns a `LoadedDocument` whose blocks (paragraphs) carry the heading path above
them, so the chunker can cut along the document's own structure. A file that cannot be read as a
document (binary, undecodable, empty, corrupt PDF) raises `LmforgeError` naming the file; the indexer
skips it and lists it in its summary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.rag.encoding import decode_text
from lmforge.rag.types import Block, LoadedDocument

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf"}

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def load_file(path: str | Path) -> LoadedDocument:
    """Load one file by its suffix (``.rst.txt`` counts as reStructuredText)."""
    path = Path(path)
    loader = _loader_for(path)
    try:
        doc = loader(path)
    except LmforgeError:
        raise
    except (OSError, ValueError) as exc:
        raise LmforgeError(f"{path}: cannot read: {exc}") from exc
    if not doc.text.strip():
        raise LmforgeError(f"{path}: empty document (no text)")
    doc.meta.setdefault("title", doc.title)
    return doc


def _loader_for(path: Path) -> Callable[[Path], LoadedDocument]:
    name = path.name.lower()
    if name.endswith(".rst.txt") or name.endswith(".rst"):
        return load_rst
    suffix = path.suffix.lower()
    loaders = {
        ".txt": load_text,
        ".md": load_markdown,
        ".markdown": load_markdown,
        ".html": load_html,
        ".htm": load_html,
        ".pdf": load_pdf,
    }
    if suffix not in loaders:
        raise LmforgeError(f"{path}: unsupported file type {suffix or '(none)'}")
    return loaders[suffix]


# --- plain text formats -------------------------------------------------------------------------


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding) of a text file: UTF-8, else the detected encoding (`encoding.py`);
    newlines normalised to ``\n``. Binary and undecodable files raise `LmforgeError`."""
    text, encoding = decode_text(path.read_bytes(), str(path))
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def split_front_matter(text: str) -> tuple[dict[str, Any], str, int]:
    """Split a leading ``---`` YAML block off; returns (metadata, rest, offset of rest)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text, 0
    meta = _parse_yaml(match.group(1))
    return meta, text[match.end() :], match.end()


def _parse_yaml(block: str) -> dict[str, Any]:
    try:
        import yaml

        data = yaml.safe_load(block)
    except Exception:  # malformed front matter: fall back to simple "key: value" lines
        data = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                data[key.strip()] = value.strip()
    if not isinstance(data, dict):
        return {}
    # Dates and other YAML scalars become plain JSON-friendly values.
    return {
        str(k): v if isinstance(v, (str, int, float, bool, list)) else str(v)
        for k, v in data.items()
    }


def paragraph_blocks(
    text: str, start: int, end: int, section: tuple[str, ...], page: int | None = None
) -> list[Block]:
    """Blocks for each blank-line separated paragraph of ``text[start:end]``."""
    blocks = []
    pos = start
    for match in _BLANK_LINES.finditer(text, start, end):
        _add_block(blocks, text, pos, match.start(), section, page)
        pos = match.end()
    _add_block(blocks, text, pos, end, section, page)
    return blocks


def _add_block(
    blocks: list[Block], text: str, start: int, end: int, section: tuple[str, ...], page: int | None
) -> None:
    # Trim whitespace so offsets point at the paragraph's first and last visible characters.
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        blocks.append(Block(start, end, section, page))


def _sections_to_blocks(
    text: str, headings: list[tuple[int, int, int, str]], first_body: int
) -> list[Block]:
    """Turn heading positions into paragraph blocks with heading paths.

    ``headings`` holds (level, heading_start, body_start, title) in document order.
    """
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    body_start = first_body
    for level, h_start, h_body, title in headings:
        blocks += paragraph_blocks(text, body_start, h_start, tuple(t for _, t in path))
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        body_start = h_body
    blocks += paragraph_blocks(text, body_start, len(text), tuple(t for _, t in path))
    return blocks


def load_text(path: Path) -> LoadedDocument:
    text, encoding = read_text(path)
    meta, _, offset = split_front_matter(text)
    meta["encoding"] = encoding
    title = str(meta.get("title") or path.stem)
    return LoadedDocument(text, title, paragraph_blocks(text, offset, len(text), ()), meta)


_MD_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_MD_SETEXT = re.compile(r"^([^\n]+)\n(=+|-+)[ \t]*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def load_markdown(path: Path) -> LoadedDocument:
    text, encoding = read_text(path)
    meta, _, offset = split_front_matter(text)
    meta["encoding"] = encoding
    fenced = [(m.start(), m.end()) for m in _MD_FENCE.finditer(text, offset)]

    def in_fence(pos: int) -> bool:
        return any(a <= pos < b for a, b in fenced)

    headings = [
        (len(m.group(1)), m.start(), m.end(), m.group(2).strip())
        for m in _MD_ATX.finditer(text, offset)
        if not in_fence(m.start())
    ]
    headings += [
        (1 if m.group(2)[0] == "=" else 2, m.start(), m.end(), m.group(1).strip())
        for m in _MD_SETEXT.finditer(text, offset)
        if not in_fence(m.start())
        and m.group(1).strip()
        and not m.group(1).startswith(("#", "-", "*", " "))
    ]
    headings.sort(key=lambda h: h[1])
    title = str(meta.get("title") or next((h[3] for h in headings if h[0] == 1), None) or path.stem)
    return LoadedDocument(text, title, _sections_to_blocks(text, headings, offset), meta)


# A reStructuredText section title: optional overline, the title, an underline of one
# punctuation character at least as long as the title.
_RST_HEADING = re.compile(
    r"^(?:([=\-`:'\"~^_*+#<>])\1{2,}\n)?([^\s].*?)[ \t]*\n([=\-`:'\"~^_*+#<>])\3{2,}[ \t]*$",
    re.MULTILINE,
)


# Blocks of nothing but link targets or index entries (".. _label:", ".. index:: x") carry no prose.
_RST_TARGETS = re.compile(r"\A(?:\.\. (?:_[^\n]*:|index::[^\n]*)(?:\n[ \t]+[^\n]*)*\n?)+\Z")


def load_rst(path: Path) -> LoadedDocument:
    text, encoding = read_text(path)
    meta, _, offset = split_front_matter(text)
    meta["encoding"] = encoding
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first use = heading levels
    headings = []
    for m in _RST_HEADING.finditer(text, offset):
        title = m.group(2).strip()
        if len(m.group(0).splitlines()[-1].rstrip()) < len(title) or (
            m.group(1) and m.group(1) != m.group(3)
        ):
            continue
        style = (m.group(3), m.group(1) is not None)
        if style not in styles:
            styles.append(style)
        headings.append((styles.index(style) + 1, m.start(), m.end(), title))
    title = str(meta.get("title") or (headings[0][3] if headings else path.stem))
    blocks = [
        b
        for b in _sections_to_blocks(text, headings, offset)
        if not _RST_TARGETS.match(text[b.start : b.end])
    ]
    return LoadedDocument(text, title, blocks, meta)


# --- HTML ---------------------------------------------------------------------------------------

_HTML_BOILERPLATE = [
    "script",
    "style",
    "noscript",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "template",
    "svg",
    "iframe",
    "button",
]
_HTML_BLOCKS = {
    "p",
    "li",
    "pre",
    "blockquote",
    "td",
    "th",
    "dt",
    "dd",
    "figcaption",
    "caption",
    "address",
}
_HTML_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


def load_html(path: Path) -> LoadedDocument:
    """Visible text of an HTML page: boilerplate (scripts, navigation, footers) dropped, headings kept."""
    from bs4 import BeautifulSoup

    raw, encoding = read_text(path)
    soup = BeautifulSoup(raw, "lxml")
    meta: dict[str, Any] = {"encoding": encoding}
    for tag in soup.find_all("meta"):
        name = (tag.get("name") or tag.get("property") or "").lower()
        if name in {"description", "author", "keywords", "og:title", "date"} and tag.get("content"):
            meta[name] = tag["content"].strip()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_HTML_BOILERPLATE):
        tag.decompose()
    for tag in soup.select(
        '[role="navigation"], [role="banner"], [role="contentinfo"], [aria-hidden="true"]'
    ):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup

    parts: list[str] = []
    blocks: list[Block] = []
    path_stack: list[tuple[int, str]] = []
    pos = 0

    def emit(piece: str) -> None:
        nonlocal pos
        if parts:
            parts.append("\n\n")
            pos += 2
        section = tuple(t for _, t in path_stack)
        parts.append(piece)
        blocks.append(Block(pos, pos + len(piece), section))
        pos += len(piece)

    for el in root.find_all(list(_HTML_HEADINGS) + list(_HTML_BLOCKS)):
        # Skip blocks nested in another block we already emit (a <p> inside an <li>).
        if any(parent.name in _HTML_BLOCKS for parent in el.parents):
            continue
        if el.name in _HTML_HEADINGS:
            heading = el.get_text(" ", strip=True)
            if not heading:
                continue
            level = _HTML_HEADINGS[el.name]
            while path_stack and path_stack[-1][0] >= level:
                path_stack.pop()
            path_stack.append((level, heading))
            emit(heading)
            continue
        piece = el.get_text("\n" if el.name == "pre" else " ", strip=el.name != "pre")
        piece = piece if el.name == "pre" else re.sub(r"\s+", " ", piece)
        if piece.strip():
            emit(piece.strip("\n"))
    if not blocks:  # no block markup at all: fall back to the visible text
        text = re.sub(r"\n\s*\n+", "\n\n", root.get_text("\n", strip=True))
        h1 = soup.find("h1")
        title = page_title or (h1.get_text(" ", strip=True) if h1 else "") or path.stem
        return LoadedDocument(text, title, paragraph_blocks(text, 0, len(text), ()), meta)
    h1 = soup.find("h1")
    title = page_title or (h1.get_text(" ", strip=True) if h1 else "") or path.stem
    return LoadedDocument("".join(parts), title, blocks, meta)


# --- PDF ----------------------------------------------------------------------------------------


def load_pdf(path: Path) -> LoadedDocument:
    """Text of each page, with the page number on every block."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise LmforgeError(f"{path}: encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except LmforgeError:
        raise
    except (PdfReadError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LmforgeError(f"{path}: corrupt PDF: {exc}") from exc
    except Exception as exc:  # pypdf raises assorted errors on damaged files
        raise LmforgeError(f"{path}: corrupt PDF: {type(exc).__name__}: {exc}") from exc

    parts: list[str] = []
    blocks: list[Block] = []
    pos = 0
    for number, page_text in enumerate(pages, start=1):
        page_text = page_text.replace("\r\n", "\n").strip()
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        parts.append(page_text)
        text_so_far = "".join(parts)
        blocks += paragraph_blocks(text_so_far, pos, pos + len(page_text), (), number)
        pos += len(page_text)
    text = "".join(parts)
    title = str(info.get("/Title") or "").strip() or path.stem
    meta: dict[str, Any] = {"pages": len(pages)}
    if info.get("/Author"):
        meta["author"] = str(info["/Author"])
    return LoadedDocument(text, title, blocks, meta)
