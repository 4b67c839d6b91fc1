"""RAG evaluation: scoring of answers (fast, with hand-made answers) and the XQuAD-en run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from lmforge.eval.judges import OverlapJudge
from lmforge.eval.rag_eval import answer_contains, answer_text, interleave, score_answer
from lmforge.eval.tasks import RagExample


@dataclass
class _Chunk:
    path: str  # relative to its source, as the store returns it
    text: str


@dataclass
class _Hit:
    chunk: _Chunk
    score: float = 1.0


@dataclass
class _Answer:
    answer: str
    refused: bool
    retrieved: list = field(default_factory=list)
    mode: str = "generated"


HITS = [
    _Hit(_Chunk("a/p01.txt", "The Denver Broncos won Super Bowl 50 in February 2016.")),
    _Hit(_Chunk("b/p00.txt", "Bananas are yellow fruit.")),
    _Hit(_Chunk("a/p01.txt", "The game was played at Levi's Stadium.")),  # same doc, second chunk
    _Hit(_Chunk("a/p00.txt", "The Carolina Panthers lost.")),
]


def test_score_answerable_question():
    ex = RagExample("q1", "Super_Bowl", "Who won Super Bowl 50?", ["Denver Broncos"], ["a/p00.txt"])
    answer = _Answer(
        "The Denver Broncos won Super Bowl 50 [1]. Bananas are purple [2].", False, HITS
    )
    s = score_answer(ex, answer, k=5, judge=OverlapJudge())["scores"]
    assert s["answer_contains"] == 1.0 and s["exact_match"] == 0.0 and 0 < s["f1"] < 1
    # ranked sources after dedup: a/p01, b/p00, a/p00 -> the gold source at rank 3
    assert s["recall@5"] == 1.0 and s["mrr"] == pytest.approx(1 / 3)
    assert s["faithfulness"] == pytest.approx(1 / 2)
    assert s["citation_recall"] == pytest.approx(1 / 2)
    assert s["citation_precision"] == pytest.approx(1 / 2)
    assert s["context_utilisation"] == pytest.approx(2 / 4)  # chunks 1 and 2 cited
    assert s["false_refusal_rate"] == 0.0 and "refusal_accuracy" not in s


def test_score_unanswerable_question():
    ex = RagExample("q2", "Held_out", "Who is the Duke?", ["someone"], [], unanswerable=True)
    refused = score_answer(
        ex, _Answer("The documents do not answer this.", True, HITS), 5, OverlapJudge()
    )
    assert refused["scores"] == {
        "exact_match": 1.0, "f1": 1.0, "answer_contains": 1.0, "refusal_accuracy": 1.0,
    }  # fmt: skip
    answered = score_answer(ex, _Answer("The Duke is Bob [1].", False, HITS), 5, OverlapJudge())
    assert answered["scores"]["refusal_accuracy"] == 0.0 and answered["scores"]["f1"] == 0.0
    assert "faithfulness" in answered["scores"]


def test_helpers():
    assert answer_text('"Denver Broncos" [1][2]') == "Denver Broncos"
    assert answer_contains("It was the Denver Broncos.", ["denver broncos"]) == 1.0
    assert answer_contains("Broncos", ["Denver Broncos"]) == 0.0
    merged = interleave(list(range(20)), ["u0", "u1"], seed=0)
    assert len(merged) == 22 and isinstance(merged[1], str)  # any prefix of 2 holds both kinds
    assert sorted(x for x in merged if isinstance(x, int)) == list(range(20))


@pytest.mark.slow
def test_xquad_rag_run_reports_every_metric(tmp_path):
    """Acceptance 4: `lmforge eval rag --task xquad_en --limit N` with the bundled model."""
    from lmforge.cli import main

    out = tmp_path / "run"
    code = main(["eval", "rag", "--task", "xquad_en", "--limit", "3", "--out", str(out),
                 "--no-progress", "--json"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    metrics = results["metrics"]
    for name in ("exact_match", "f1", "answer_contains", "recall@5", "mrr", "ndcg@5",
                 "faithfulness", "citation_recall", "citation_precision", "context_utilisation",
                 "refusal_accuracy", "false_refusal_rate", "latency_p50_ms", "latency_p95_ms",
                 "latency_p99_ms"):  # fmt: skip
        assert name in metrics, name
    assert results["n"] == 3 and results["config"]["unanswerable"] >= 1  # a held-out question
    assert metrics["latency_p50_ms"] > 0
    report = (out / "report.md").read_text()
    assert f"{metrics['f1']:.4f}" in report and f"{metrics['latency_p50_ms']:.1f}" in report
    for png in ("latency.png", "per_category.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
