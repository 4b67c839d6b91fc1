"""Loaders keep structure and metadata; the chunker respects budgets, offsets and sections."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import fpdf
import pytest

from lmforge.errors import LmforgeError
from lmforge.rag.chunker import Chunker, sentence_spans
from lmforge.rag.loaders import load_file

RST_DOCS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "python-docs" / "rst_sources"
)


def test_markdown_front_matter_and_headings(corpus):
    doc = load_file(corpus / "volcanoes.md")
    assert doc.title == "Volcanoes"
    assert (
        doc.meta["team"] == "geology"
        and doc.meta["year"] == 2019
        and doc.meta["tags"] == ["earth", "science"]
    )
    sections = {doc.text[b.start : b.end][:20]: b.section for b in doc.blocks}
    assert sections["Mount Vesuvius erupt"] == ("Volcanoes", "Eruptions")
    assert "team: geology" not in "".join(doc.text[b.start : b.end] for b in doc.blocks)


def test_markdown_code_fence_is_not_a_heading(tmp_path):
    path = tmp_path / "code.md"
    path.write_text("# Real\n\n```python\n# not a heading\nx = 1\n```\n\nAfter the code.\n")
    doc = load_file(path)
    assert all(b.section == ("Real",) for b in doc.blocks)


def test_rst_heading_levels(shared_data):
    doc = load_file(shared_data / "python-docs" / "rst_sources" / "tutorial" / "classes.rst.txt")
    assert doc.title == "Classes"
    paths = {b.section for b in doc.blocks}
    assert ("Classes", "A First Look at Classes", "Class Definition Syntax") in paths
    assert ("Classes", "Inheritance", "Multiple Inheritance") in paths


def test_html_boilerplate_stripped_headings_kept(corpus):
    doc = load_file(corpus / "page.html")
    assert doc.title == "Tea"
    assert "zzz" not in doc.text
    brewing = next(b for b in doc.blocks if "80 degrees" in doc.text[b.start : b.end])
    assert brewing.section == ("Tea", "Brewing")


def test_pdf_pages_kept(tmp_path):
    pdf = fpdf.FPDF()
    pdf.set_title("Atlas")
    for text in ["The first page talks about rivers.", "The second page talks about mountains."]:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 10, text)
    path = tmp_path / "atlas.pdf"
    pdf.output(str(path))
    doc = load_file(path)
    assert doc.title == "Atlas" and doc.meta["pages"] == 2
    pages = {doc.text[b.start : b.end]: b.page for b in doc.blocks}
    assert pages["The second page talks about mountains."] == 2
    chunks = Chunker(max_tokens=64).run(doc, "atlas.pdf")
    assert [c.page for c in chunks] == [1, 2]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("bin.txt", b"\x7fELF\x00\x00\x01", "binary"),
        # random bytes without a NUL: some code page decodes them, into no plausible text
        ("noise.md", bytes(b for b in random.Random(0).randbytes(4000) if b)[:2000], "undecodable"),
        ("blank.txt", b"\n \n", "empty"),
        ("bad.pdf", b"%PDF-1.7\n garbage", "PDF"),
        ("thing.docx", b"PK\x03\x04", "unsupported"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LmforgeError, match=reason) as err:
        load_file(path)
    assert name in str(err.value)


def test_chunks_are_slices_within_budget_with_sections(shared_data, embedder):
    doc = load_file(
        shared_data / "python-docs" / "rst_sources" / "tutorial" / "controlflow.rst.txt"
    )
    chunker = Chunker(embedder.count_tokens, max_tokens=120, overlap_tokens=24)
    chunks = chunker.run(doc, "controlflow.rst.txt")
    assert len(chunks) > 20
    counts = embedder.count_tokens([c.text for c in chunks])
    assert max(counts) <= 120
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert c.section and c.section[0] == "More Control Flow Tools"
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    # Every paragraph of the document is in some chunk.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    for block in doc.blocks:
        assert block.start in covered


def test_long_paragraph_overlaps_by_sentences(tmp_path, embedder):
    sentences = [f"Sentence number {i} describes the tidal pattern of bay {i}." for i in range(40)]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(sentences))
    doc = load_file(path)
    chunks = Chunker(embedder.count_tokens, max_tokens=60, overlap_tokens=20).run(doc, "long.txt")
    assert len(chunks) >= 4
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks of one paragraph should overlap"
        assert b.start > a.start
    # A single over-long "sentence" is cut between words, still within budget.
    path.write_text("word " * 800)
    chunks = Chunker(embedder.count_tokens, max_tokens=50).run(load_file(path), "long.txt")
    assert max(embedder.count_tokens([c.text for c in chunks])) <= 50


def test_sentence_spans_respect_abbreviations():
    text = "See e.g. the docs. Dr. Smith arrived at 5 p.m. yesterday. Then it rained!"
    parts = [text[a:b] for a, b in sentence_spans(text, 0, len(text))]
    assert parts[0] == "See e.g. the docs."
    assert parts[-1] == "Then it rained!"
