"""Ingestion keeps every document and reads only what it should: sources, links, encodings,
and stores written before sources existed (both store kinds)."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from lmforge.rag.filters import ANONYMOUS, parse_filters
from lmforge.rag.sources import Source, document_key, legacy_sources, resolve_source
from lmforge.rag.stores import open_store
from lmforge.rag.stores.postgres import _strip_prefix_param

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v1"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def ask(ask_json, question: str, store: str, *groups: str) -> dict:
    extra = ["--principal", "tester", "--groups", ",".join(groups)] if groups else []
    return ask_json(question, "--store", store, *extra)


# -- identity ---------------------------------------------------------------------------------


def test_same_file_names_in_two_folders_are_two_documents(tmp_path, store_url, cli, ask_json):
    pub = write(
        tmp_path / "pub",
        {
            "notes.md": "# Notes\n\nThe cafeteria opens at 8am and closes at 3pm on weekdays.\n",
            "old.md": "# Old\n\nThe fax machine on the third floor was retired in 2019.\n",
        },
    )
    secret = write(
        tmp_path / "secret",
        {"notes.md": "# Notes\n\nThe CEO salary is 950,000 kronor a year before bonuses.\n"},
    )
    code, out, err = cli("index", str(pub), "--store", store_url, "--no-progress")
    assert code == 0 and "2 new" in out, err
    code, out, err = cli(
        "index", str(secret), "--store", store_url, "--allow-group", "hr", "--no-progress"
    )
    # the second folder's notes.md is a new document, not a change to the first one's
    assert code == 0 and "1 new, 0 changed" in out and "source: secret" in out, err

    cafeteria = ask(ask_json, "When does the cafeteria open?", store_url)
    assert not cafeteria["refused"] and "8am" in cafeteria["answer"]
    assert (cafeteria["citations"][0]["source"], cafeteria["citations"][0]["source_name"]) == (
        "notes.md",
        "pub",
    )
    # Neither folder's notes.md is visible to who may not read it ...
    outsider = ask(ask_json, "What is the CEO salary?", store_url)
    assert "950,000" not in json.dumps(outsider)
    assert all(r["source_name"] == "pub" for r in outsider["retrieved"])
    # ... and each is answerable by who may.
    insider = ask(ask_json, "What is the CEO salary?", store_url, "hr")
    assert not insider["refused"] and "950,000" in insider["answer"]
    assert insider["citations"][0]["source_name"] == "secret"
    assert "8am" in ask(ask_json, "When does the cafeteria open?", store_url, "hr")["answer"]

    # --prune acts within the folder being indexed: exactly the deleted file's document goes.
    (pub / "old.md").unlink()
    code, out, err = cli("index", str(pub), "--store", store_url, "--prune", "--no-progress")
    assert code == 0 and "1 removed" in out and "1 unchanged" in out, err
    store = open_store(store_url)
    assert set(store.document_hashes()) == {"pub/notes.md", "secret/notes.md"}
    assert store.sources() == {"pub": str(pub.resolve()), "secret": str(secret.resolve())}
    store.close()


def test_a_file_or_subfolder_of_a_known_source_updates_it(tmp_path, store_url, cli):
    docs = write(
        tmp_path / "docs",
        {"a.md": "# A\n\nAlpha text.\n", "guide/b.md": "# B\n\nBeta text.\n"},
    )
    assert cli("index", str(docs), "--store", store_url, "--no-progress")[0] == 0
    (docs / "guide" / "b.md").write_text("# B\n\nBeta text, revised.\n")
    code, out, _ = cli("index", str(docs / "guide" / "b.md"), "--store", store_url)
    assert code == 0 and "0 new, 1 changed" in out and "source: docs" in out
    # pruning a subfolder leaves the rest of its source alone
    (docs / "guide" / "b.md").unlink()
    (docs / "guide" / "c.md").write_text("# C\n\nGamma text.\n")
    code, out, _ = cli("index", str(docs / "guide"), "--store", store_url, "--prune")
    assert code == 0 and "1 new" in out and "1 removed" in out
    store = open_store(store_url)
    assert set(store.document_hashes()) == {"docs/a.md", "docs/guide/c.md"}
    store.close()


def test_source_name_keeps_a_moved_folder(tmp_path, store_url, cli):
    old = write(tmp_path / "old" / "kb", {"a.md": "# A\n\nAlpha text.\n"})
    assert cli("index", str(old), "--store", store_url, "--source", "handbook")[0] == 0
    new = tmp_path / "new" / "kb"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    code, out, _ = cli("index", str(new), "--store", store_url, "--source", "handbook")
    assert code == 0 and "1 unchanged" in out and "0 new" in out
    store = open_store(store_url)
    assert store.sources() == {"handbook": str(new.resolve())}
    store.close()
    code, _, err = cli("index", str(new), str(tmp_path), "--store", store_url, "--source", "x")
    assert code == 1 and "--source x" in err and err.count("\n") == 1
    code, _, err = cli("index", str(new), "--store", store_url, "--source", "a/b")
    assert code == 1 and "bad --source" in err


def test_resolve_source_names_and_prefixes(tmp_path):
    (tmp_path / "docs" / "guide").mkdir(parents=True)
    (tmp_path / "docs" / "guide" / "x.md").write_text("x")
    (tmp_path / "other" / "docs").mkdir(parents=True)
    root = (tmp_path / "docs").resolve()
    assert resolve_source(tmp_path / "docs", {}) == Source("docs", root)
    known = {"docs": str(root)}
    assert resolve_source(tmp_path / "docs" / "guide", known) == Source("docs", root, "guide/")
    sub = resolve_source(tmp_path / "docs" / "guide" / "x.md", known)
    assert sub == Source("docs", root, "guide/x.md", is_file=True)
    assert sub.covers("docs/guide/x.md") and not sub.covers("docs/guide/y.md")
    # another folder with the same name gets a name of its own
    assert resolve_source(tmp_path / "other" / "docs", known).name == "docs-2"
    assert document_key("docs", "guide/x.md") == "docs/guide/x.md"
    roots, plan = legacy_sources(
        [("a.md", {"root": "/x/docs"}), ("b.md", {"root": "/y/docs"}), ("c.md", {})]
    )
    assert roots == {"root": "", "docs": "/x/docs", "docs-2": "/y/docs"}
    assert plan == {"a.md": ("docs", "a.md"), "b.md": ("docs-2", "b.md"), "c.md": ("root", "c.md")}


# -- stores written before sources ------------------------------------------------------------


def _legacy_store(store_url: str, tmp_path: Path) -> Path:
    """The fixture store (written by the release before sources) at ``store_url``, its corpus
    copied to a temporary folder and its documents' recorded root pointed there."""
    corpus = shutil.copytree(LEGACY / "corpus", tmp_path / "corpus")
    root = str(corpus.resolve())
    if not store_url.startswith("postgresql://"):
        Path(store_url).mkdir(parents=True)
        db = Path(store_url) / "store.sqlite"
        shutil.copy(LEGACY / "sqlite" / "store.sqlite", db)
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE documents SET meta = json_set(meta, '$.root', ?)", (root,))
        return corpus
    import psycopg

    prefix = parse_qs(urlparse(store_url).query)["table_prefix"][0]
    conninfo = _strip_prefix_param(store_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        schema = (LEGACY / "postgres" / "schema.sql").read_text().replace("lmforge_", prefix)
        for statement in schema.split(";"):
            if statement.strip():
                conn.execute(statement)
        for table in ("meta", "documents", "chunks", "terms"):
            with conn.cursor() as cur, cur.copy(f"COPY {prefix}{table} FROM STDIN") as copy:
                copy.write((LEGACY / "postgres" / f"{table}.copy").read_bytes())
        conn.execute(f"DELETE FROM {prefix}corpus")
        with conn.cursor() as cur, cur.copy(f"COPY {prefix}corpus FROM STDIN") as copy:
            copy.write((LEGACY / "postgres" / "corpus.copy").read_bytes())
        # as pg_dump's restore does: the id sequence continues after the loaded rows
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{prefix}chunks', 'id'), max(id)) FROM {prefix}chunks"
        )
        conn.execute(
            f"UPDATE {prefix}documents SET meta = jsonb_set(meta, '{{root}}', to_jsonb(%s::text))",
            (root,),
        )
    return corpus


def test_a_store_from_the_previous_release_opens_answers_and_reindexes_as_no_op(
    tmp_path, store_url, cli, ask_json
):
    corpus = _legacy_store(store_url, tmp_path)
    answer = ask(ask_json, "When does the cafeteria open?", store_url)
    assert not answer["refused"] and "8am" in answer["answer"]
    assert answer["citations"][0]["source"] == "notes.md"
    assert answer["citations"][0]["source_name"] == "corpus"
    # access control survived the migration
    assert "25th" not in json.dumps(ask(ask_json, "When are salaries paid?", store_url))
    assert "25th" in ask(ask_json, "When are salaries paid?", store_url, "hr")["answer"]

    code, out, err = cli("index", str(corpus), "--store", store_url, "--no-progress")
    assert code == 0 and "0 new, 0 changed, 3 unchanged" in out and "0 embedded" in out, err
    store = open_store(store_url)
    assert set(store.document_hashes()) == {
        "corpus/notes.md",
        "corpus/guide.txt",
        "corpus/hr/pay.md",
    }
    assert store.sources() == {"corpus": str(corpus.resolve())}
    assert store.get_document("corpus/hr/pay.md").allowed == ("hr",)
    if hasattr(store, "check_integrity"):
        assert store.check_integrity() == []
    store.close()
    # a second folder with the same file names no longer replaces the old documents
    write(tmp_path / "more", {"notes.md": "# More\n\nThe gym opens at 6am.\n"})
    code, out, _ = cli("index", str(tmp_path / "more"), "--store", store_url, "--no-progress")
    assert code == 0 and "1 new, 0 changed" in out
    assert "8am" in ask(ask_json, "When does the cafeteria open?", store_url)["answer"]


# -- links ------------------------------------------------------------------------------------


def test_links_outside_the_folder_are_skipped_unless_followed(tmp_path, store_url, cli):
    outside = write(tmp_path / "outside", {"secret.txt": "The vault code is 4711-ZEBRA.\n"})
    docs = write(tmp_path / "docs", {"a.txt": "Alpha is the first letter of the alphabet.\n"})
    (docs / "link.txt").symlink_to(outside / "secret.txt")
    (docs / "linked-dir").symlink_to(outside, target_is_directory=True)
    (docs / "inside.txt").symlink_to(docs / "a.txt")  # inside the folder: followed
    (docs / "loop").symlink_to(docs, target_is_directory=True)  # a cycle
    (docs / "sub").mkdir()
    (docs / "sub" / "up").symlink_to(docs / "sub", target_is_directory=True)  # another cycle

    code, out, err = cli("index", str(docs), "--store", store_url, "--no-progress")
    assert code == 0, err
    assert "2 new" in out and "2 skipped" in out  # a.txt and inside.txt
    for name in ("link.txt", "linked-dir"):
        line = next(line for line in out.splitlines() if name in line)
        assert "outside" in line and "--follow-links" in line, line
    store = open_store(store_url)
    assert set(store.document_hashes()) == {"docs/a.txt", "docs/inside.txt"}
    # nothing of the linked file reached the store
    assert store.missing_terms(["vault", "ZEBRA", "alphabet"], parse_filters(None), ANONYMOUS) == [
        "vault",
        "ZEBRA",
    ]
    store.close()

    code, out, err = cli(
        "index", str(docs), "--store", store_url, "--follow-links", "--no-progress"
    )
    assert code == 0 and "2 new" in out and "0 skipped" in out, err
    store = open_store(store_url)
    assert set(store.document_hashes()) == {
        "docs/a.txt",
        "docs/inside.txt",
        "docs/link.txt",
        "docs/linked-dir/secret.txt",
    }
    store.close()


# -- encodings --------------------------------------------------------------------------------

SENTENCE = "Le café crème coûte 3 € à Zürich, où la façade naïve est très célèbre."


def test_text_in_other_encodings_is_decoded(tmp_path, store_url, cli):
    docs = write(
        tmp_path / "docs",
        {
            "latin1.txt": "Menu: café au lait, crème brûlée, naïve façade in Zürich.\n".encode(
                "latin-1"
            ),
            "windows.md": f"# Prix\n\n{SENTENCE}\n".encode("cp1252"),
            "utf16.txt": f"{SENTENCE}\n".encode("utf-16"),  # with its BOM
            "utf8.txt": f"{SENTENCE}\n",
            "noise.txt": random.Random(1).randbytes(4096),
        },
    )
    code, out, err = cli("index", str(docs), "--store", store_url, "--no-progress")
    assert code == 0 and "4 new" in out and "1 skipped" in out, err
    assert "latin1.txt: cp1252" in out and "windows.md: cp1252" in out
    assert "utf16.txt: utf-16" in out and "utf8.txt:" not in out
    assert "noise.txt: binary" in out
    store = open_store(store_url)
    for key, encoding, text in [
        ("docs/latin1.txt", "cp1252", "café au lait, crème brûlée, naïve façade in Zürich"),
        ("docs/windows.md", "cp1252", SENTENCE),
        ("docs/utf16.txt", "utf-16", SENTENCE),
        ("docs/utf8.txt", "utf-8", SENTENCE),
    ]:
        assert store.get_document(key).meta["encoding"] == encoding
        hits = store.lexical_search(text, 10, parse_filters(None), ANONYMOUS)
        chunks = store.get_chunks([chunk_id for chunk_id, _ in hits]).values()
        assert any(c.doc_id == key and text in c.text for c in chunks), key
    store.close()
