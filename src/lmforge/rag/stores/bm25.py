"""BM25 as SQLite's FTS5 computes it, so that a store that is not SQLite ranks the same way.

The SQLite store ranks lexical hits with FTS5's ``bm25()`` over its ``porter unicode61``
tokenizer. The PostgreSQL store reproduces both halves:

* the tokens: rather than re-implement unicode61 and FTS5's own Porter stemmer (and drift from
  them), texts are tokenized by FTS5 itself, in a throw-away in-memory table read back through
  ``fts5vocab``; Python's ``sqlite3`` ships FTS5, which the SQLite store already requires;
* the score, as ``fts5Bm25Function`` in SQLite's ``ext/fts5/fts5_aux.c`` computes it::

      score = sum over the query's phrases p of
              idf(p) * f(p) * (k1 + 1) / (f(p) + k1 * (1 - b + b * D / avgdl))
      idf(p) = ln((N - n(p) + 0.5) / (n(p) + 0.5)), or 1e-6 where that is not positive

  with k1 = 1.2 and b = 0.75 (fixed in FTS5), f(p) the occurrences of p in the chunk, each counted
  with its column's weight, D the chunk's token count over all columns (unweighted), avgdl the
  mean D over all chunks, N the number of chunks and n(p) the number of chunks p occurs in.

A query word is one FTS5 phrase: a word the tokenizer splits (``foo_bar``) is a phrase of
consecutive tokens, a word with no token (``___``) matches nothing and is dropped, and two words
with the same stem count twice, as ``"x" OR "x"`` does in FTS5.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The SQLite store builds its FTS5 table (tokenize=, column order) and its bm25() call from these;
# tests/rag/test_store_bm25_parity.py checks that the two stores rank alike.
TOKENIZER = "porter unicode61"
COLUMNS = ("text", "title", "section")
WEIGHTS = (1.0, 0.3, 0.5)
K1 = 1.2
B = 0.75
IDF_FLOOR = 1e-6


@dataclass
class RowTokens:
    """One chunk's tokens: for each term, its token positions in each column; and D."""

    positions: dict[str, tuple[list[int], ...]]
    length: int


def tokenize_rows(rows: Sequence[Sequence[str]]) -> list[RowTokens]:
    """Tokenize rows of (text, title, section) exactly as the SQLite store's FTS5 table does."""
    out = [RowTokens({}, 0) for _ in rows]
    if not rows:
        return out
    with _fts5() as conn:
        conn.executemany(
            f"INSERT INTO t(rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?)",
            [(i, *row) for i, row in enumerate(rows)],
        )
        # One row per token instance, term by term; offsets within a row's column come in order.
        column_of = {name: i for i, name in enumerate(COLUMNS)}
        for term, row, column, offset in conn.execute("SELECT term, doc, col, offset FROM v"):
            tokens = out[row]
            columns = tokens.positions.get(term)
            if columns is None:
                columns = tokens.positions[term] = tuple([] for _ in COLUMNS)
            columns[column_of[column]].append(offset)
            tokens.length += 1
    return out


def query_phrases(words: Iterable[str]) -> list[tuple[str, ...]]:
    """The FTS5 phrase (its tokens, in order) of each query word; words without tokens dropped."""
    phrases = []
    for tokens in tokenize_rows([(word, "", "") for word in words]):
        # every position of every term: a term may repeat inside one word ("aa_aa")
        by_offset = sorted(
            (offset, term) for term, columns in tokens.positions.items() for offset in columns[0]
        )
        if by_offset:
            phrases.append(tuple(term for _, term in by_offset))
    return phrases


class _fts5:
    """A private in-memory FTS5 table with the SQLite store's tokenizer, and its instance view."""

    def __enter__(self) -> sqlite3.Connection:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(
            f"CREATE VIRTUAL TABLE t USING fts5({', '.join(COLUMNS)}, tokenize='{TOKENIZER}')"
        )
        self.conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        return self.conn

    def __exit__(self, *exc) -> None:
        self.conn.close()
