"""Structure-aware chunking within a token budget.

A document is cut along its own structure: sections (by heading), then paragraphs, then
sentences, and only a sentence longer than the whole budget is cut between words. Token counts come
from the embedder's tokenizer, so a chunk never overflows what the embedder reads. Consecutive
chunks of one paragraph share ``overlap_tokens`` worth of whole sentences so that a fact split
across a boundary is still found whole in one chunk. Every chunk is a slice of the document text:
``chunk.text == doc.text[chunk.start:chunk.end]``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lmforge.rag.types import Block, Chunk, LoadedDocument

CountTokens = Callable[[Sequence[str]], list[int]]

# A sentence ends at . ! ? (optionally closed by quotes/brackets) before whitespace and a capital,
# digit, quote or bracket; or at a line break that ends a list item or a heading-like line.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[A-Z0-9*`])|\n(?=\s*[-*+•]\s|\s*\d+[.)]\s)"
)
_ABBREVIATIONS = re.compile(
    r"\b(?:e\.g|i\.e|etc|vs|Mr|Mrs|Ms|Dr|Prof|St|No|Fig|cf|al)\.$", re.IGNORECASE
)


def whitespace_token_count(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free fallback: about 1.3 word pieces per whitespace word."""
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text[start:end]``."""
    spans = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if _ABBREVIATIONS.search(text, max(pos, match.start() - 6), match.start()):
            continue
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, end))
    result = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            result.append((a, b))
    return result


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int


class Chunker:
    """Split a `LoadedDocument` into `Chunk`s of at most ``max_tokens`` embedder tokens."""

    def __init__(
        self,
        count_tokens: CountTokens | None = None,
        max_tokens: int = 200,
        overlap_tokens: int = 32,
    ):
        if max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        self.count_tokens = count_tokens or whitespace_token_count
        self.max_tokens = max_tokens
        self.overlap_tokens = min(overlap_tokens, max_tokens // 2)

    @classmethod
    def for_embedder(
        cls, embedder: Any, max_tokens: int = 200, overlap_tokens: int = 32
    ) -> Chunker:
        """Chunks counted in the embedder's tokens and within its input limit (less room for
        its special tokens)."""
        limit = min(max_tokens, embedder.max_tokens - 8)
        return cls(embedder.count_tokens, max_tokens=limit, overlap_tokens=overlap_tokens)

    def __call__(self, doc: LoadedDocument, doc_id: str) -> list[Chunk]:
        return self.run(doc, doc_id)

    def run(self, doc: LoadedDocument, doc_id: str) -> list[Chunk]:
        text = doc.text
        # Sentence spans of every block, token-counted in one batch.
        block_sentences = [sentence_spans(text, b.start, b.end) for b in doc.blocks]
        flat = [span for spans in block_sentences for span in spans]
        counts = iter(self.count_tokens([text[a:b] for a, b in flat]) if flat else [])
        units_per_block = [
            [_Unit(a, b, next(counts)) for a, b in spans] for spans in block_sentences
        ]

        spans: list[tuple[int, int, Block]] = []
        # Sections (and pages) never share a chunk: the chunk's section path must be true for all of it.
        for _, group in itertools.groupby(
            zip(doc.blocks, units_per_block, strict=True),
            key=lambda bu: (bu[0].section, bu[0].page),
        ):
            group = list(group)
            for a, b in self._pack(text, [units for _, units in group]):
                spans.append((a, b, group[0][0]))

        chunks = []
        for ordinal, (a, b, block) in enumerate(spans):
            piece = text[a:b]
            digest = hashlib.sha1(f"{doc_id}\0{ordinal}\0{piece}".encode()).hexdigest()[:16]
            chunks.append(
                Chunk(digest, doc_id, ordinal, piece, a, b, block.section, block.page, doc.title)
            )
        return chunks

    def _pack(self, text: str, blocks: list[list[_Unit]]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        current: list[_Unit] = []
        used = 0

        def flush() -> None:
            nonlocal current, used
            if current:
                out.append((current[0].start, current[-1].end))
            current, used = [], 0

        for units in blocks:
            units = [piece for u in units for piece in self._split_long(text, u)]
            block_tokens = sum(u.tokens for u in units)
            if used + block_tokens <= self.max_tokens:
                current += units
                used += block_tokens
                continue
            if block_tokens <= self.max_tokens:  # the paragraph fits whole in a fresh chunk
                flush()
                current, used = list(units), block_tokens
                continue
            # A paragraph longer than the budget: pack its sentences, overlapping a little.
            flush()
            for unit in units:
                if used + unit.tokens > self.max_tokens and current:
                    previous = current
                    flush()
                    current = self._overlap_tail(previous, unit.tokens)
                    used = sum(u.tokens for u in current)
                current.append(unit)
                used += unit.tokens
        flush()
        return out

    def _overlap_tail(self, previous: list[_Unit], incoming: int) -> list[_Unit]:
        tail: list[_Unit] = []
        budget = min(self.overlap_tokens, self.max_tokens - incoming)
        for unit in reversed(previous[1:]):  # never repeat the whole previous chunk
            if unit.tokens > budget:
                break
            tail.insert(0, unit)
            budget -= unit.tokens
        return tail

    def _split_long(self, text: str, unit: _Unit) -> list[_Unit]:
        """Cut a sentence longer than the budget between words into near-equal pieces."""
        if unit.tokens <= self.max_tokens:
            return [unit]
        n_pieces = -(-unit.tokens // self.max_tokens) + 1  # one spare: token density varies
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[unit.start : unit.end])]
        per_piece = max(1, -(-len(words) // n_pieces))
        pieces = []
        for i in range(0, len(words), per_piece):
            group = words[i : i + per_piece]
            a, b = unit.start + group[0][0], unit.start + group[-1][1]
            pieces.append((a, b))
        counts = self.count_tokens([text[a:b] for a, b in pieces])
        result = []
        for (a, b), n in zip(pieces, counts, strict=True):
            piece = _Unit(a, b, n)
            result += (
                self._split_long(text, piece)
                if n > self.max_tokens and b - a < unit.end - unit.start
                else [piece]
            )
        return result
