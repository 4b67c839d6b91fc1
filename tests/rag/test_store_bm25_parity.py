"""The PostgreSQL store ranks lexical hits by the same BM25 as the SQLite store's FTS5.

Both stores get the same chunks (random vectors: only lexical search is under test) and must give
the same scores, hence the same order, on a hand-computed corpus, on phrases and repeated stems,
after deletes and replacements, and on Cranfield.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lmforge.rag.filters import ANONYMOUS, parse_filters
from lmforge.rag.stores import open_store
from lmforge.rag.types import Chunk, DocumentRecord

from .conftest import _pg_url

pytestmark = pytest.mark.postgres

NO_FILTER = parse_filters(None)


def documents(rows):
    """(doc_id, title, text, section) rows -> write_documents items, one chunk per document."""
    rng = np.random.default_rng(0)
    items = []
    for doc_id, title, text, section in rows:
        chunk = Chunk(f"{doc_id}#0", doc_id, 0, text, 0, len(text), tuple(section), None, title)
        vector = rng.standard_normal((1, 4)).astype(np.float32)
        items.append((DocumentRecord(doc_id, title, doc_id, 0.0, n_chunks=1), [chunk], vector))
    return items


@pytest.fixture
def stores(tmp_path, pg_server):
    """An SQLite and a PostgreSQL store, both empty."""
    pair = (open_store(tmp_path / "sqlite"), open_store(_pg_url(pg_server)))
    yield pair
    for store in pair:
        store.close()


def search(store, query, k=10):
    return store.lexical_search(query, k, NO_FILTER, ANONYMOUS)


def assert_same_scores(stores, queries, k=10):
    sqlite, postgres = stores
    for query in queries:
        want, got = dict(search(sqlite, query, k)), dict(search(postgres, query, k))
        assert got.keys() == want.keys(), query
        for cid, score in want.items():
            assert got[cid] == pytest.approx(score, rel=1e-9), (query, cid)


SMALL = [
    ("a", "Ice", "glacier ice melts", ["Cold"]),
    ("b", "Volcano", "lava flows from the volcano", ["Hot"]),
    ("c", "Dessert", "ice cream", []),
]


def test_score_matches_a_hand_computation(stores):
    # Token counts D (text + title + section path as its JSON text): a 3+1+1, b 5+1+1, c 2+1+0.
    n, avgdl = 3, (5 + 7 + 3) / 3
    k1, b = 1.2, 0.75

    def term(f, d, hits):
        idf = math.log((n - hits + 0.5) / (hits + 0.5))
        idf = idf if idf > 0 else 1e-6  # FTS5's floor: "ice" is in 2 of 3 chunks
        return idf * f * (k1 + 1) / (f + k1 * (1 - b + b * d / avgdl))

    expected = {
        # ice: a's text and title (weight 0.3), c's text; melting -> melt: a's text
        "ice melting": {"a#0": term(1.3, 5, 2) + term(1.0, 5, 1), "c#0": term(1.0, 3, 2)},
        # hot: b's section (weight 0.5); volcano: b's text and title
        "hot volcano": {"b#0": term(0.5, 7, 1) + term(1.3, 7, 1)},
    }
    for store in stores:
        store.write_documents(documents(SMALL))
        for query, scores in expected.items():
            got = dict(search(store, query))
            assert got.keys() == scores.keys(), (store.url, query)
            for cid, score in scores.items():
                assert got[cid] == pytest.approx(score, rel=1e-12), (store.url, query, cid)


def test_phrases_and_repeated_stems_score_as_fts5_does(stores):
    rows = [
        ("p", "", "call foo_bar twice: foo bar, then bar foo", []),
        ("q", "foo bar", "bar foo only", ["foo", "bar"]),
        ("r", "", "running runs the runner", []),
        ("s", "", "foo is not next to bar", []),
    ]
    for store in stores:
        store.write_documents(documents(rows))
    # foo_bar is the phrase "foo bar"; running and runs are both "run", counted twice; ___ has no token.
    assert_same_scores(stores, ["foo_bar", "bar_foo", "running runs", "foo_bar ___ runner", "___"])
    assert [c for c, _ in search(stores[1], "foo_bar")] == ["p#0", "q#0"]
    assert search(stores[1], "___") == []


def test_deletes_and_replacements_keep_the_corpus_statistics(stores):
    rows = [(f"d{i}", f"title {i}", f"shared word{i % 5} and text{i}", ["s"]) for i in range(30)]
    for store in stores:
        store.write_documents(documents(rows))
        store.delete_documents([f"d{i}" for i in range(0, 30, 3)])
        # Replace two documents with different text (and so different lengths and terms).
        store.write_documents(
            documents([(f"d{i}", "new", "word1 word1 long " * 5, []) for i in (1, 2)])
        )
        # A document given twice in one batch keeps its last version.
        store.write_documents(documents([("d4", "", "draft", []), ("d4", "", "final text4", [])]))
    assert_same_scores(stores, ["word1", "word2 text7", "shared", "long title", "draft final"])
    assert [c for c, _ in search(stores[1], "draft final")] == ["d4#0"]
    postgres = stores[1]
    n_chunks, n_tokens = postgres.conn.execute(
        f"SELECT n_chunks, n_tokens FROM {postgres._t('corpus')}"
    ).fetchone()
    actual = postgres.conn.execute(
        f"SELECT count(*), sum(n_tokens) FROM {postgres._t('chunks')}"
    ).fetchone()
    assert (n_chunks, n_tokens) == tuple(actual)
    assert n_chunks == 20
    # Every token of every stored chunk is one posted position, and no more.
    positions = postgres.conn.execute(
        "SELECT sum(cardinality(pos_text) + cardinality(pos_title) + cardinality(pos_section))"
        f" FROM {postgres._t('terms')}"
    ).fetchone()[0]
    assert positions == n_tokens


def test_a_store_from_before_bm25_is_indexed_on_open(stores, pg_server):
    sqlite, postgres = stores
    for store in stores:
        store.write_documents(documents(SMALL))
    # Take the PostgreSQL store back to the old layout: a tsvector column, no postings.
    t = postgres._t
    postgres.conn.execute(f"DROP TABLE {t('terms')}, {t('corpus')}")
    postgres.conn.execute(f"ALTER TABLE {t('chunks')} DROP COLUMN n_tokens")
    postgres.conn.execute(
        f"ALTER TABLE {t('chunks')} ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
    )
    reopened = open_store(postgres.url, create=False)
    try:
        assert_same_scores((sqlite, reopened), ["ice melting", "hot volcano", "lava"])
    finally:
        reopened.close()


def read_cranfield(root):
    """Cranfield abstracts (id -> (title, text)) and queries, as benchmarks/retrieval.py reads them."""
    docs = {}
    for record in re.split(r"^\.I ", (root / "cran.all.1400").read_text(), flags=re.M)[1:]:
        doc_id, _, body = record.partition("\n")
        fields = dict(re.findall(r"^\.([TABW])\n(.*?)(?=^\.[TABW]\n|\Z)", body, flags=re.M | re.S))
        title, text = (" ".join(fields.get(f, "").split()) for f in "TW")
        docs[doc_id.strip()] = (title, text or title)
    queries = [
        " ".join(record.partition("\n.W\n")[2].split())
        for record in re.split(r"^\.I ", (root / "cran.qry").read_text(), flags=re.M)[1:]
    ]
    return docs, queries


def tie_groups(hits):
    """Runs of equal scores (1e-9 relative) as (score, set of ids), best first."""
    groups = []
    for cid, score in hits:
        if groups and math.isclose(score, groups[-1][0], rel_tol=1e-9):
            groups[-1][1].add(cid)
        else:
            groups.append((score, {cid}))
    return groups


def test_cranfield_top10_is_the_same_on_both_stores(stores, shared_data):
    docs, queries = read_cranfield(shared_data / "cranfield")
    rows = [(doc_id, title, text, []) for doc_id, (title, text) in docs.items()]
    for store in stores:
        store.write_documents(documents(rows))
    for query in queries[:60]:
        # Ask for more than ten so that a tie across the 10th place is seen whole in both.
        want, got = (tie_groups(search(store, query, 40)) for store in stores)
        assert want, query
        covered = 0
        for (want_score, want_ids), (got_score, got_ids) in zip(want, got, strict=False):
            assert got_score == pytest.approx(want_score, rel=1e-9), query
            assert got_ids == want_ids or covered + len(want_ids) >= 40, query
            covered += len(want_ids)
            if covered >= 10:
                break
