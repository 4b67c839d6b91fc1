"""RAG evaluation: ask a task's questions through lmforge.rag and score every answer.

Per question (see ``rag_metrics`` for the definitions):

- answer quality: ``exact_match``, ``f1`` (SQuAD), ``answer_contains`` (a normalised gold answer
  occurs in the normalised answer: ALCE's STR-EM, fair to long answers); on an unanswerable
  question each is 1.0 exactly when the system refused;
- retrieval (answerable questions, gold sources as qrels): ``recall@k``, ``mrr``, ``ndcg@k``;
- grounding: ``faithfulness``, ``citation_recall``, ``citation_precision``,
  ``context_utilisation`` (judged by an ``OverlapJudge`` or a ``ModelJudge``);
- refusals: ``refusal_accuracy`` (unanswerable questions refused), ``false_refusal_rate``
  (answerable questions refused);
- latency p50/p95/p99 of the whole ask (retrieve + generate + verify), per question.

The store is either given (``--store``) or built from the task: for SQuAD-format data every
paragraph becomes a document ``<title>/pNN.txt``, except those of the last ``holdout_articles``
articles, whose questions then have no answer in the store and are marked unanswerable.
Questions run in a seeded interleaved order (answerable and unanswerable mixed), so ``--limit``
gives a small sample with both kinds.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

from lmforge.assets import DEFAULT_MODEL
from lmforge.errors import LmforgeError
from lmforge.eval.judges import Judge, get_judge
from lmforge.eval.metrics import exact_match, f1_score, normalize_answer
from lmforge.eval.rag_metrics import (
    citation_scores,
    context_utilisation,
    faithfulness,
    looks_like_refusal,
    split_statements,
)
from lmforge.eval.results import EvalResult, latency_summary, mean, per_category
from lmforge.eval.retrieval_metrics import mrr, ndcg_at_k, recall_at_k
from lmforge.eval.tasks import RagExample, Task, read_records


def answer_contains(answer: str, golds: list[str]) -> float:
    """1.0 if some normalised gold answer occurs in the normalised answer (ALCE STR-EM)."""
    text = f" {normalize_answer(answer)} "
    return float(any(f" {normalize_answer(g)} " in text for g in golds if normalize_answer(g)))


def answer_text(answer: str) -> str:
    """The answer without citation markers and wrapping quotes, for EM/F1."""
    text = re.sub(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]", "", answer).strip()
    return text.strip("\"'“”")


# -- building the corpus and the question list ----------------------------------------------
def build_squad_corpus(task: Task, docs_dir: Path) -> set[str]:
    """Write the indexed paragraphs as files; returns the titles held out of the index."""
    raw = read_records(task.resolve(task.spec["data"]), "squad", task_path=str(task.path))
    titles = list(dict.fromkeys(r["title"] for r in raw))
    holdout_n = int(task.section("rag").get("holdout_articles", 0))
    if holdout_n >= len(titles):
        raise LmforgeError(f"{task.path}: holdout_articles {holdout_n} leaves no article to index")
    held_out = set(titles[len(titles) - holdout_n :]) if holdout_n else set()
    written: set[str] = set()
    for r in raw:
        if r["title"] in held_out or r["source"] in written:
            continue
        path = docs_dir / r["source"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(r["context"].strip() + "\n", encoding="utf-8")
        written.add(r["source"])
    return held_out


def interleave(answerable: list, unanswerable: list, seed: int = 0) -> list:
    """Both lists shuffled (seeded) and merged so any prefix holds both kinds in proportion."""
    rng = random.Random(seed)
    a, u = answerable[:], unanswerable[:]
    rng.shuffle(a)
    rng.shuffle(u)
    if not u:
        return a
    out: list = []
    total = len(a) + len(u)
    ai = ui = 0
    for i in range(total):
        # place the j-th unanswerable item at position 1 + j * total / len(u)
        want_u = ui < len(u) and (ai >= len(a) or i >= 1 + ui * total / len(u))
        if want_u:
            out.append(u[ui])
            ui += 1
        else:
            out.append(a[ai])
            ai += 1
    return out


def rag_examples(task: Task, held_out_titles: set[str], limit: int | None) -> list[RagExample]:
    examples = task.examples()
    if held_out_titles:
        for ex in examples:
            if ex.category in held_out_titles:
                ex.unanswerable = True
                ex.sources = []
    ordered = interleave(
        [e for e in examples if not e.unanswerable], [e for e in examples if e.unanswerable]
    )
    return ordered[:limit] if limit else ordered


# -- the system under test --------------------------------------------------------------------
class RagSystem:
    """lmforge.rag as `lmforge ask` runs it: the pipeline's answerer over the store."""

    def __init__(
        self,
        store_url: str,
        model: str | None,
        *,
        k: int = 5,
        style: str = "sentence",
        min_relevance: float | None = None,
        precision: str = "auto",
    ) -> None:
        from lmforge.rag.pipeline import Pipeline

        self.rag = Pipeline.open(store_url, create=False)
        self.chat = None if model is None else self.rag.load_chat(model, precision=precision)
        options: dict[str, Any] = {"k": k, "style": style}
        if min_relevance is not None:
            options["min_relevance"] = min_relevance
        self.answerer = self.rag.answerer(self.chat, **options)

    def ask(self, question: str):
        return self.answerer.ask(question)

    def close(self) -> None:
        self.rag.close()


def index_documents(docs_dir: Path, store_dir: Path, progress: bool) -> None:
    from lmforge.rag.pipeline import Pipeline

    with Pipeline.open(store_dir) as rag:
        rag.indexer(progress=progress).run([docs_dir])


# -- scoring one answer -----------------------------------------------------------------------
def score_answer(ex: RagExample, answer, k: int, judge: Judge) -> dict[str, Any]:
    refused = bool(getattr(answer, "refused", False)) or looks_like_refusal(answer.answer)
    hits = list(answer.retrieved)
    scores: dict[str, float] = {}
    if ex.unanswerable:
        for m in ("exact_match", "f1", "answer_contains", "refusal_accuracy"):
            scores[m] = float(refused)
    else:
        text = "" if refused else answer_text(answer.answer)
        scores["exact_match"] = exact_match(text, ex.answers) if ex.answers else 0.0
        scores["f1"] = f1_score(text, ex.answers) if ex.answers else 0.0
        scores["answer_contains"] = answer_contains(text, ex.answers) if ex.answers else 0.0
        scores["false_refusal_rate"] = float(refused)
        if ex.sources:
            ranked = list(dict.fromkeys(h.chunk.path for h in hits))
            qrels = dict.fromkeys(ex.sources, 1)
            scores[f"recall@{k}"] = recall_at_k(ranked, qrels, k)
            scores["mrr"] = mrr(ranked, qrels, k)
            scores[f"ndcg@{k}"] = ndcg_at_k(ranked, qrels, k)
    if not refused:
        statements = split_statements(answer.answer)
        contexts = [h.chunk.text for h in hits]
        passages = {n: h.chunk.text for n, h in enumerate(hits, start=1)}
        cited = {n for s in statements for n in s.citations}
        values = {
            "faithfulness": faithfulness(statements, contexts, judge),
            "context_utilisation": context_utilisation(statements, contexts, cited, judge),
        }
        values["citation_recall"], values["citation_precision"] = citation_scores(
            statements, passages, judge
        )
        scores.update({m: v for m, v in values.items() if v is not None})
    return {
        "scores": scores,
        "refused": refused,
        "answer": answer.answer,
        "mode": getattr(answer, "mode", ""),
        "retrieved": [h.chunk.path for h in hits],
    }


METRIC_ORDER = [
    "exact_match", "f1", "answer_contains", "recall@{k}", "mrr", "ndcg@{k}", "faithfulness",
    "citation_recall", "citation_precision", "context_utilisation", "refusal_accuracy",
    "false_refusal_rate",
]  # fmt: skip


def evaluate_rag(
    task: Task,
    *,
    model: str | None = DEFAULT_MODEL,
    store: str | None = None,
    work_dir: str | Path | None = None,
    limit: int | None = None,
    k: int | None = None,
    judge: str | Judge = "overlap",
    precision: str = "auto",
    answerer: str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run a RAG task end to end and score it (see the module docstring)."""
    started = time.perf_counter()
    cfg = task.section("rag")
    k = int(k or cfg.get("k", 5))
    answerer = answerer or str(cfg.get("answerer", "generate"))
    if answerer not in ("generate", "extractive"):
        raise LmforgeError(f"unknown answerer {answerer!r}: use 'generate' or 'extractive'")

    held_out: set[str] = set()
    if store is None:
        if work_dir is None:
            import tempfile

            work_dir = tempfile.mkdtemp(prefix=f"lmforge-eval-{task.name}-")
        work = Path(work_dir)
        docs_dir, store_dir = work / "documents", work / "store"
        if task.spec.get("format") == "squad":
            held_out = build_squad_corpus(task, docs_dir)
        elif "documents" in cfg:
            docs_dir = task.resolve(str(cfg["documents"]))
            if not docs_dir.exists():
                raise LmforgeError(f"{task.path}: [rag] documents {docs_dir} not found")
        else:
            raise LmforgeError(f"{task.path}: no store given and no [rag] documents to index")
        index_documents(docs_dir, store_dir, progress)
        store = str(store_dir)
    examples = rag_examples(task, held_out, limit)

    system = RagSystem(
        store,
        model if answerer == "generate" else None,
        k=k,
        style=str(cfg.get("style", "sentence")),
        min_relevance=cfg.get("min_relevance"),
        precision=precision,
    )
    if isinstance(judge, str):
        judge_lm = None
        if judge == "model":
            from lmforge.eval.lm import EvalModel, load_eval_model

            judge_lm = (
                EvalModel(system.chat.handle)
                if system.chat is not None
                else load_eval_model(model or DEFAULT_MODEL)
            )
        judge_name, judge = judge, get_judge(judge, judge_lm)
    else:
        judge_name = getattr(judge, "name", type(judge).__name__)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(examples), desc=task.name, unit="q", dynamic_ncols=True)
    rows, latencies, skipped = [], [], []
    try:
        for ex in examples:
            t0 = time.perf_counter()
            try:
                answer = system.ask(ex.question)
            except LmforgeError as exc:  # one bad question must not lose the run
                skipped.append({"id": ex.id, "reason": str(exc)})
                continue
            elapsed = 1000 * (time.perf_counter() - t0)
            latencies.append(elapsed)
            scored = score_answer(ex, answer, k, judge)
            rows.append(
                {
                    "id": ex.id,
                    "category": ex.category,
                    "question": ex.question,
                    "gold": ex.answers,
                    "sources": ex.sources,
                    "unanswerable": ex.unanswerable,
                    "latency_ms": elapsed,
                    **scored,
                }
            )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        system.close()

    names = [m.format(k=k) for m in METRIC_ORDER]
    metrics = {}
    for m in names:
        values = [r["scores"][m] for r in rows if m in r["scores"]]
        metrics[m] = mean(values) if values else float("nan")
    metrics.update(latency_summary(latencies))
    return EvalResult(
        task=task.name,
        type=task.type,
        model=str(model) if answerer == "generate" else "extractive (no model)",
        n=len(rows),
        metrics=metrics,
        primary_metric=str(task.spec.get("primary_metric", "f1")),
        examples=rows,
        config={
            "limit": limit,
            "k": k,
            "judge": judge_name,
            "answerer": answerer,
            "store": store,
            "held_out_articles": sorted(held_out) or None,
            "unanswerable": sum(r["unanswerable"] for r in rows),
        },
        per_category=per_category(rows, ["f1", "answer_contains"]),
        latencies_ms=latencies,
        duration_s=time.perf_counter() - started,
        skipped=skipped,
    )
