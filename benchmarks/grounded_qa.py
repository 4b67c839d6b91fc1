"""Grounded QA on XQuAD-en: index the 240 paragraphs as documents, ask the 1,190 questions.

    python benchmarks/grounded_qa.py                 # everything (slow: one generation per question)
    python benchmarks/grounded_qa.py --limit 50      # the first 50 questions
    python benchmarks/grounded_qa.py --quick         # 20 questions, a smoke run

Reports retrieval hit@1/hit@5 of the gold paragraph, answer EM/F1 (SQuAD normalization), citation
accuracy (the first cited chunk is from the gold paragraph, over answered questions), refusal rate
and p50/p95 latency per question, for the SmolLM2 answerer and for the extractive answerer alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rag_common import SHARED_DATA, markdown_table, percentile
from lmforge.assets import DEFAULT_MODEL
from lmforge.eval.metrics import exact_match, f1_score
from lmforge.rag.answer import GroundedAnswerer, strip_citations
from lmforge.rag.pipeline import Pipeline


def load_xquad(path: Path = SHARED_DATA / "xquad-en" / "xquad.en.json"):
    """(paragraphs: doc_id -> (title, text), questions: [(question, gold answers, gold doc_id)])."""
    data = json.loads(path.read_text())["data"]
    paragraphs, questions = {}, []
    for article in data:
        title = article["title"].replace("_", " ")
        for i, para in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}/{i:02d}.txt"
            paragraphs[doc_id] = (title, para["context"])
            for qa in para["qas"]:
                questions.append((qa["question"], [a["text"] for a in qa["answers"]], doc_id))
    return paragraphs, questions


def answer_text(answer) -> str:
    """The prediction scored against the gold spans: citations and quotes removed; "" for a refusal."""
    if answer.refused:
        return ""
    text = strip_citations(answer.answer)
    text = re.sub(r"\[unsupported\]", "", text)
    return text.strip().strip('"').strip()


def run(answerer: GroundedAnswerer, questions, show: int = 0) -> dict:
    hit1 = hit5 = em = f1 = cited_ok = answered = refused = 0
    latencies = []
    for question, golds, gold_doc in tqdm(questions, desc="questions", unit="q", file=sys.stderr):
        t = time.perf_counter()
        answer = answerer.ask(question)
        latencies.append((time.perf_counter() - t) * 1000)
        docs = [h.chunk.path for h in answer.retrieved]
        hit1 += bool(docs[:1] and docs[0] == gold_doc)
        hit5 += gold_doc in docs[:5]
        prediction = answer_text(answer)
        if show > 0 and len(latencies) <= show:
            print(
                f"Q: {question}\n  gold: {golds[0]!r}  [{answer.mode}] {answer.answer!r}",
                file=sys.stderr,
            )
        em += exact_match(prediction, golds)
        f1 += f1_score(prediction, golds)
        if answer.refused:
            refused += 1
        else:
            answered += 1
            cited_ok += bool(answer.citations and answer.citations[0].source == gold_doc)
    n = len(questions)
    return {
        "hit@1": hit1 / n,
        "hit@5": hit5 / n,
        "EM": em / n,
        "F1": f1 / n,
        "citation acc.": cited_ok / max(answered, 1),
        "refusal rate": refused / n,
        "p50 ms": percentile(latencies, 50),
        "p95 ms": percentile(latencies, 95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions")
    parser.add_argument("--quick", action="store_true", help="20 questions")
    parser.add_argument("--no-llm", action="store_true", help="only the extractive answerer")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--show", type=int, default=0, help="print the first N answers to stderr")
    parser.add_argument(
        "--store", default=None, help="store directory to build or reuse (default: a temp dir)"
    )
    parser.add_argument(
        "--style",
        default="short",
        choices=["short", "sentence"],
        help="answer style asked of the model",
    )
    args = parser.parse_args()

    paragraphs, questions = load_xquad()
    limit = 20 if args.quick and args.limit is None else args.limit
    if limit:
        # Spread the sample over all articles rather than taking the first one's questions.
        step = max(1, len(questions) // limit)
        questions = questions[::step][:limit]

    workdir = Path(tempfile.mkdtemp(prefix="lmforge-xquad-"))
    corpus = workdir / "docs"
    for doc_id, (title, text) in paragraphs.items():
        path = corpus / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'---\ntitle: "{title}"\n---\n{text}\n')
    rag = Pipeline.open(args.store or workdir / "store")
    t0 = time.perf_counter()
    report = rag.indexer(progress=True).run([corpus])
    print(
        f"indexed {len(paragraphs)} paragraphs into {report.chunks} chunks in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )

    rows = []
    if not args.no_llm:
        result = run(rag.answerer(args.model, style=args.style), questions, args.show)
        rows.append([f"{args.model} grounded ({args.style})", *result.values()])
    result = run(rag.answerer(None), questions, args.show)
    rows.append(["extractive only (best sentence)", *result.values()])
    print(f"\nXQuAD-en: {len(paragraphs)} paragraphs, {len(questions)} questions\n")
    print(markdown_table(["answerer", *result.keys()], rows))
    rag.close()


if __name__ == "__main__":
    main()
