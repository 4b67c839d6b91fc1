"""The real thing: SmolLM2-135M-Instruct answers from the store, through `lmforge ask --json`."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_generated_answer_is_grounded_and_cited(corpus, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = str(tmp_path / "store")
    code, _, err = cli("index", str(corpus), "--store", store, "--no-progress")
    assert code == 0, err
    code, out, err = cli(
        "ask", "Which Roman towns did Mount Vesuvius bury?", "--store", store, "--json", "--k", "3"
    )
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"answer", "refused", "citations", "retrieved", "timings_ms"}
    assert result["refused"] is False
    assert "Pompeii" in result["answer"] or "Herculaneum" in result["answer"]
    retrieved = {r["chunk_id"] for r in result["retrieved"]}
    for citation in result["citations"]:
        assert citation["chunk_id"] in retrieved
        assert f"[{citation['n']}]" in result["answer"]
    assert {c["source"] for c in result["citations"]} == {"volcanoes.md"}
    assert "rerank" in result["timings_ms"]  # the model reranked the reader's windows

    # the model writes the answer in the "sentence" style
    code, out, err = cli(
        "ask", "Which Roman towns did Mount Vesuvius bury?", "--store", store, "--json",
        "--style", "sentence",
    )  # fmt: skip
    assert code == 0, err
    written = json.loads(out)
    assert written["refused"] is False and "generate" in written["timings_ms"]
    assert "Pompeii" in written["answer"] or "Herculaneum" in written["answer"]

    code, out, err = cli(
        "ask", "Who won the 1998 FIFA World Cup final?", "--store", store, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["refused"] is True
