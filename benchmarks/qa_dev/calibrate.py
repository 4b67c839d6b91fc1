"""Calibrate answerability (`lmforge.rag.answer.Answerability`) on the development set.

    python benchmarks/qa_dev/calibrate.py --store DIR            # DIR: the dev store (built if missing)

SQuAD 2.0's trick gives the negatives: every answerable question is asked twice, once over all
pages and once with its own pages filtered out (only related pages remain), beside the questions
the pages never answer. With the answerability check switched off, the reader's best window is
recorded for each; a logistic regression over its features separates the answerable asks from the
rest, once for the extractive reader and once with the model's reranking (whose extra feature is
``question_logp``). Printed: the cross-validated refusal rates per group at several thresholds,
and the fitted weights to put in `Answerability`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _rag_common import SHARED_DATA  # noqa: E402
from lmforge.assets import DEFAULT_MODEL  # noqa: E402
from lmforge.rag.answer import Answerability  # noqa: E402
from lmforge.rag.pipeline import Pipeline  # noqa: E402


class AnswerEverything(Answerability):
    def answerable(self, best) -> bool:
        return True


def build_store(store: Path) -> Pipeline:
    """The dev pages indexed into ``store`` (kept between runs)."""
    rag = Pipeline.open(store)
    corpus = Path(tempfile.mkdtemp(prefix="qa-dev-"))
    for page in (HERE / "pages.txt").read_text().split():
        target = corpus / page
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_DATA / "python-docs" / "rst_sources" / page, target)
    rag.indexer(progress=True, source="dev").run([corpus], prune=True)
    return rag


def record(answerer, questions: list[dict], pages: list[str]) -> list[dict]:
    """The best window's features for every ask (answerable, filtered, unanswerable)."""
    rows = []
    for q in questions:
        asks = [("answerable" if q["answerable"] else q["kind"], None)]
        if q["answerable"]:
            others = [p for p in pages if p not in q["pages"]]
            asks.append(("filtered", {"source": {"in": others}}))
        for group, filters in asks:
            answer = answerer.ask(q["question"], filters=filters)
            features = dict(answer.reading.features) if answer.reading else None
            rows.append({"group": group, "refused": answer.refused, "features": features})
    return rows


def fit(rows: list[dict], names: list[str]) -> None:
    """Fit and report: cross-validated refusal rates per group, then the weights."""
    scored = [r for r in rows if not r["refused"] and r["features"]]
    x = np.array([[r["features"].get(n, 0.0) for n in names] for r in scored])
    y = np.array([r["group"] == "answerable" for r in scored])
    model = LogisticRegression(C=1.0, max_iter=2000)
    p = cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]
    prob = {id(r): v for r, v in zip(scored, p, strict=True)}
    groups = sorted({r["group"] for r in rows})
    print("threshold | " + " | ".join(f"{g} refused" for g in groups))
    for threshold in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        rates = []
        for g in groups:
            members = [r for r in rows if r["group"] == g]
            refused = [r["refused"] or prob.get(id(r), 1.0) < threshold for r in members]
            rates.append(f"{np.mean(refused):.2f}")
        print(f"{threshold:.2f} | " + " | ".join(rates))
    model.fit(x, y)
    weights = ", ".join(f'"{n}": {w:.3f}' for n, w in zip(names, model.coef_[0], strict=True))
    print(f"weights = {{{weights}}}, bias = {model.intercept_[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="dev store directory (built if missing)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model for the reranked reader")
    args = parser.parse_args()
    questions = [json.loads(line) for line in (HERE / "questions.jsonl").open()]
    pages = (HERE / "pages.txt").read_text().split()
    rag = build_store(Path(args.store))
    base = [
        "similarity",
        "coverage",
        "coverage_idf",
        "value",
        "named_default",
        "rank",
        "reader_score",
    ]
    for label, model, names in [
        ("extractive reader", None, base),
        (f"reader reranked by {args.model}", args.model, [*base, "question_logp"]),
    ]:
        answerer = rag.answerer(model)
        answerer.answerability = AnswerEverything()
        print(f"\n## {label}")
        fit(record(answerer, questions, pages), names)


if __name__ == "__main__":
    main()
