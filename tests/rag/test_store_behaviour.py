"""Indexing and retrieval behaviour, run against both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from lmforge.rag.answer import REFUSAL, GroundedAnswerer
from lmforge.rag.embedder import EmbeddingCache
from lmforge.rag.filters import ANONYMOUS, Principal, parse_filters
from lmforge.rag.indexer import Indexer
from lmforge.rag.retriever import HybridRetriever
from lmforge.rag.stores import open_store

from .conftest import CORPUS, write_corpus


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def index(store, embedder, paths, tmp_path, **kwargs):
    prune = kwargs.pop("prune", False)
    cache = EmbeddingCache(tmp_path / "emb-cache.sqlite")
    return Indexer(store, embedder, cache=cache, progress=False, **kwargs).run(
        [str(p) for p in paths], prune=prune
    )


def test_incremental_reindex(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    first = index(store, embedder, [corpus], tmp_path)
    # Documents are named by source (the folder's name) and path inside it.
    assert sorted(first.added) == sorted(
        f"docs/{name}"
        for name in [
            "volcanoes.md",
            "photosynthesis.rst",
            "glaciers.txt",
            "internal/salaries.md",
            "page.html",
        ]
    )
    assert first.skipped == []
    before = {
        cid: c.text
        for cid, c in store.get_chunks(
            [c for c, _ in store.lexical_search("glacier", 50, parse_filters(None), ANONYMOUS)]
        ).items()
    }

    # Unchanged files: nothing is re-embedded or rewritten.
    second = index(store, embedder, [corpus], tmp_path)
    assert second.added == [] and second.updated == [] and second.chunks == 0
    assert sorted(second.unchanged) == sorted(first.added)

    # A changed file replaces its chunks: the old text is gone, the new is found.
    (corpus / "glaciers.txt").write_text(
        "Glaciers on Mars are buried under dust.\n\nThe Perito Moreno glacier in Patagonia still advances.\n"
    )
    third = index(store, embedder, [corpus], tmp_path)
    assert third.updated == ["docs/glaciers.txt"] and third.added == []
    hits = store.lexical_search("Aletsch", 10, parse_filters(None), ANONYMOUS)
    assert hits == []
    new = store.lexical_search("Perito Moreno", 10, parse_filters(None), ANONYMOUS)
    assert new and all(store.get_chunks([c])[c].path == "glaciers.txt" for c, _ in new)
    assert not set(before) & set(store.get_chunks([c for c, _ in new]))

    # Pruning removes documents whose files are gone (and only with --prune).
    (corpus / "page.html").unlink()
    kept = index(store, embedder, [corpus], tmp_path)
    assert kept.removed == [] and store.get_document("docs/page.html") is not None
    pruned = Indexer(store, embedder, progress=False).run([str(corpus)], prune=True)
    assert pruned.removed == ["docs/page.html"]
    assert store.get_document("docs/page.html") is None
    assert store.lexical_search("Camellia", 10, parse_filters(None), ANONYMOUS) == []
    assert store.stats()["documents"] == 4
    store.close()


def test_acl_never_leaks(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    index(store, embedder, [corpus], tmp_path)
    secret = "salary band staff engineer Zorblax kronor"
    qvec = embedder.embed([secret])[0]
    none = parse_filters(None)
    outsiders = [
        ANONYMOUS,
        Principal("mallory"),
        Principal("eve", ("engineering", "geology")),
        Principal("HR"),
        Principal("hr"),
    ]
    for who in outsiders:
        # Every path to the chunks: lexical, dense (far more candidates than chunks), hybrid, answer.
        ids = [c for c, _ in store.lexical_search(secret, 100, none, who)]
        ids += [c for c, _ in store.dense_search(qvec, 100, none, who)]
        retriever = HybridRetriever(store, embedder, candidates=100)
        ids += [h.chunk.chunk_id for h in retriever.run(secret, k=100, principal=who).hits]
        docs = {c.path for c in store.get_chunks(ids).values()}
        assert "internal/salaries.md" not in docs, who
        answer = GroundedAnswerer(retriever, None, min_relevance=0.0).ask(secret, principal=who)
        assert "Zorblax" not in json.dumps(answer.to_json()), who
    # Allowed readers do see it: through the group, or through an explicit user entry.
    for who in [Principal("alice", ("hr",)), Principal("bob", ("eng", "hr"))]:
        ids = [c for c, _ in store.lexical_search(secret, 5, none, who)]
        assert "internal/salaries.md" in {c.path for c in store.get_chunks(ids).values()}
        dense = [c for c, _ in store.dense_search(qvec, 1, none, who)]
        assert store.get_chunks(dense)[dense[0]].path == "internal/salaries.md"
    store.close()


def test_filters(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    index(store, embedder, [corpus], tmp_path, meta={"collection": "test"})
    retriever = HybridRetriever(store, embedder, candidates=50)
    hr = Principal("alice", ("hr",))

    def docs(filters, principal=hr):
        return {
            h.chunk.path
            for h in retriever.run(
                "facts about nature and work", k=50, filters=filters, principal=principal
            ).hits
        }

    assert docs(["team=geology"]) == {"volcanoes.md"}
    assert docs(["team=geology|people"]) == {"volcanoes.md", "internal/salaries.md"}
    assert docs({"team": {"in": ["people"]}}) == {"internal/salaries.md"}
    assert docs(["year>=2020"]) == {"internal/salaries.md"}
    assert docs(["year<2020"]) == {"volcanoes.md"}
    assert docs({"year": {"gte": 2019, "lte": 2023}}) == {"volcanoes.md", "internal/salaries.md"}
    assert docs(["tags=science"]) == {"volcanoes.md"}  # list metadata matches any element
    assert docs(["source=glaciers.txt"]) == {"glaciers.txt"}
    assert docs(["format=html"]) == {"page.html"}
    assert docs(["collection=test"]) == {
        "volcanoes.md",
        "photosynthesis.rst",
        "glaciers.txt",
        "internal/salaries.md",
        "page.html",
    }
    assert docs(["collection=other"]) == set()
    # Filters never widen access.
    assert docs(["team=people"], ANONYMOUS) == set()
    store.close()


def test_bad_files_skipped_and_reported(store_url, corpus, embedder, tmp_path, cli, ask_json):
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02garbage\x00" * 20)
    (corpus / "noise.txt").write_bytes(
        bytes(b for b in random.Random(0).randbytes(4000) if b)[:2000]
    )
    (corpus / "empty.md").write_text("   \n\n")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "dangling.txt").symlink_to(corpus / "does-not-exist.txt")  # unreadable, even for root
    code, out, err = cli("index", str(corpus), "--store", store_url, "--no-progress")
    assert code == 0, err
    assert "5 new" in out and "skipped" in out
    assert "5 skipped" in out
    for name, reason in [
        ("binary.txt", "binary"),
        ("noise.txt", "undecodable"),
        ("empty.md", "empty"),
        ("broken.pdf", "PDF"),
        ("dangling.txt", "broken symbolic link"),
    ]:
        line = next(line for line in out.splitlines() if name in line)
        assert reason in line, line
    # What was committed is all there, and a second run still reports the bad files.
    store = open_store(store_url)
    assert store.stats()["documents"] == 5
    store.close()
    code, out, _ = cli("index", str(corpus), "--store", store_url, "--no-progress")
    assert code == 0 and "5 unchanged" in out and "broken.pdf" in out


def test_refusal_and_json_contract(store_url, corpus, embedder, tmp_path, cli, ask_json):
    code, _, err = cli("index", str(corpus), "--store", store_url, "--no-progress")
    assert code == 0, err
    result = ask_json("Which Roman towns did Mount Vesuvius bury?", "--store", store_url)
    assert set(result) == {"answer", "refused", "citations", "retrieved", "timings_ms"}
    assert (
        result["refused"] is False
        and isinstance(result["answer"], str)
        and "Pompeii" in result["answer"]
    )
    assert result["citations"] and all(
        set(c) == {"n", "source", "source_name", "title", "chunk_id", "quote"}
        and isinstance(c["n"], int)
        and isinstance(c["quote"], str)
        and isinstance(c["title"], str)
        and isinstance(c["chunk_id"], str)
        for c in result["citations"]
    )
    assert result["citations"][0]["source"] == "volcanoes.md"  # path relative to the indexed PATH
    assert result["citations"][0]["source_name"] == "docs"  # the indexed folder's name
    assert result["retrieved"][0]["source_name"] == "docs"
    assert result["citations"][0]["title"] == "Volcanoes"
    assert f"[{result['citations'][0]['n']}]" in result["answer"]
    retrieved_ids = [r["chunk_id"] for r in result["retrieved"]]
    assert result["citations"][0]["chunk_id"] in retrieved_ids
    assert all(
        set(r) == {"chunk_id", "source", "source_name", "score"} and isinstance(r["score"], float)
        for r in result["retrieved"]
    )
    assert isinstance(result["timings_ms"], dict) and all(
        isinstance(v, (int, float)) for v in result["timings_ms"].values()
    )
    assert result["timings_ms"]["total"] > 0

    refused = ask_json("Who won the 1998 FIFA World Cup final in football?", "--store", store_url)
    assert (
        refused["refused"] is True and refused["answer"] == REFUSAL and refused["citations"] == []
    )


def test_ask_errors_are_one_line(tmp_path, cli, ask_json):
    code, _, err = cli("ask", "anything", "--store", str(tmp_path / "missing"), "--extractive")
    assert code == 1 and err.count("\n") == 1 and "missing" in err
    code, _, err = cli("index", str(tmp_path / "nope"), "--store", str(tmp_path / "s"))
    assert code == 1 and "nope" in err and err.count("\n") == 1
    code, _, err = cli("ask", "q", "--store", str(tmp_path / "s"), "--filter", "bad filter")
    assert code == 1 and "bad filter" in err


def test_dense_and_lexical_rank_the_right_document_first(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    index(store, embedder, [corpus], tmp_path)
    none = parse_filters(None)
    for question, doc in [
        ("What pigment absorbs red and blue light?", "photosynthesis.rst"),
        ("what temperature should water be for brewing green tea", "page.html"),
        ("largest glacier in the Alps", "glaciers.txt"),
    ]:
        lex = store.lexical_search(question, 3, none, ANONYMOUS)
        dense = store.dense_search(embedder.embed([question])[0], 3, none, ANONYMOUS)
        assert store.get_chunks([lex[0][0]])[lex[0][0]].path == doc
        assert store.get_chunks([dense[0][0]])[dense[0][0]].path == doc
        assert dense[0][1] == pytest.approx(
            float(
                np.dot(
                    embedder.embed([question])[0], store.get_embeddings([dense[0][0]])[dense[0][0]]
                )
            ),
            abs=1e-4,
        )
    # HTML boilerplate never reaches the index.
    for junk in ("zzzscript", "zzznavlink", "zzzfooter"):
        assert store.lexical_search(junk, 5, none, ANONYMOUS) == []
    store.close()


def test_sources_relative_to_each_indexed_path(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    report = index(store, embedder, [corpus / "internal", corpus / "glaciers.txt"], tmp_path)
    # A folder is a source of its own; a file belongs to the source of its folder.
    assert sorted(report.added) == ["docs/glaciers.txt", "internal/salaries.md"]
    assert store.get_document("internal/salaries.md").path == "salaries.md"
    assert store.get_document("docs/glaciers.txt").meta["path"] == "glaciers.txt"
    store.close()


def test_cli_acl_and_meta(store_url, corpus, cli, ask_json):
    code, _, err = cli(
        "index",
        str(corpus / "internal"),
        "--store",
        store_url,
        "--allow-group",
        "finance",
        "--meta",
        "dept=money",
        "--no-progress",
    )
    assert code == 0, err
    code, _, err = cli("index", str(corpus / "glaciers.txt"), "--store", store_url, "--no-progress")
    assert code == 0, err
    question = "What is the salary band for a staff engineer at Zorblax?"
    for who in [[], ["--principal", "mallory"], ["--groups", "hr"], ["--principal", "finance"]]:
        result = ask_json(question, "--store", store_url, "--min-relevance", "0", *who)
        assert all(r["source"] != "salaries.md" for r in result["retrieved"]), who
        assert "Zorblax" not in json.dumps(result), who
    allowed = ask_json(
        question, "--store", store_url, "--groups", "eng,finance", "--filter", "dept=money"
    )
    assert allowed["refused"] is False and {r["source"] for r in allowed["retrieved"]} == {
        "salaries.md"
    }
    assert "180,000" in allowed["answer"]


def test_lexical_ranking_is_the_same_with_or_without_a_filter(store_url, embedder, tmp_path):
    # With nothing to restrict, SQLite ranks inside FTS5 alone and joins only the top k; a filter
    # (here one that keeps every document) takes the joined path. Both must rank alike.
    public = {name: text for name, text in CORPUS.items() if not name.startswith("internal/")}
    store = open_store(store_url)
    index(store, embedder, [write_corpus(tmp_path / "public", public)], tmp_path, meta={"set": "a"})
    keep_all = parse_filters({"set": "a"})
    for query in ["green tea leaves", "glacier ice in the Alps", "volcano ash Pompeii"]:
        plain = store.lexical_search(query, 5, parse_filters(None), ANONYMOUS)
        filtered = store.lexical_search(query, 5, keep_all, ANONYMOUS)
        assert plain, query
        assert [c for c, _ in plain] == [c for c, _ in filtered], query
        np.testing.assert_allclose([s for _, s in plain], [s for _, s in filtered], rtol=1e-9)
    store.close()


def test_missing_terms_checks_the_whole_store_within_access(store_url, corpus, embedder, tmp_path):
    store = open_store(store_url)
    index(store, embedder, [corpus], tmp_path)
    none = parse_filters(None)
    terms = ["Vesuvius", "Camellia sinensis", "zorblax_turbo", "Zorblax", "staff engineer"]
    # "Zorblax" and "staff engineer" are only in the HR-only document: absent for who may not read it
    assert store.missing_terms(terms, none, ANONYMOUS) == [
        "zorblax_turbo",
        "Zorblax",
        "staff engineer",
    ]
    assert store.missing_terms(terms, none, Principal("alice", ("hr",))) == ["zorblax_turbo"]
    # filters narrow the documents looked at, as they narrow search
    assert store.missing_terms(
        ["Vesuvius"], parse_filters(["team=people"]), Principal("a", ("hr",))
    ) == ["Vesuvius"]
    store.close()
