"""A real crash: SIGKILL the indexer mid-run, check the store, re-run, check it completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.rag.filters import ANONYMOUS, parse_filters
from lmforge.rag.stores import open_store

N_DOCS = 40


def _corpus(root: Path) -> Path:
    root.mkdir(parents=True)
    topics = ["rivers", "mountains", "deserts", "forests", "oceans", "islands", "lakes", "valleys"]
    for i in range(N_DOCS):
        topic = topics[i % len(topics)]
        (root / f"doc{i:03d}.md").write_text(
            f"# Note {i} on {topic}\n\nThis is field note number {i} about {topic}. Marker token uniq{i}x.\n\n"
            f"The survey team measured {topic} at site {i} and recorded {i * 7} observations.\n"
        )
    return root


def _documents(url: str) -> int:
    try:
        store = open_store(url, create=False)
    except Exception:
        return 0
    try:
        return store.stats()["documents"]
    except Exception:
        return 0
    finally:
        store.close()


@pytest.mark.slow
def test_kill_during_ingestion_then_rerun(store_url, tmp_path):
    corpus = _corpus(tmp_path / "notes")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "lmforge.cli",
        "index",
        str(corpus),
        "--store",
        store_url,
        "--batch-chunks",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = 0
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            seen = _documents(store_url)
            if seen >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"indexer finished before it could be killed: {proc.communicate()}"
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    store = open_store(store_url, create=False)
    committed = store.stats()["documents"]
    assert 2 <= committed < N_DOCS
    if hasattr(store, "check_integrity"):
        assert store.check_integrity() == []
    # Whatever was committed is whole: every stored document has all its chunks, and is searchable.
    for doc_id in store.document_hashes():
        record = store.get_document(doc_id)
        number = int(record.path[3:6])
        hits = store.lexical_search(f"uniq{number}x", 5, parse_filters(None), ANONYMOUS)
        assert [store.get_chunks([c])[c].doc_id for c, _ in hits] == [doc_id]
        assert record.n_chunks >= 1
    store.close()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{N_DOCS - committed} new" in done.stdout and f"{committed} unchanged" in done.stdout
    store = open_store(store_url, create=False)
    assert store.stats()["documents"] == N_DOCS
    if hasattr(store, "check_integrity"):
        assert store.check_integrity() == []
    store.close()
