"""Retrieval quality on Cranfield: our BM25 (SQLite FTS5), dense (all-MiniLM-L6-v2), hybrid (RRF)
and bm25s, side by side in one run.

    python benchmarks/retrieval.py            # all 1,400 abstracts, 225 queries
    python benchmarks/retrieval.py --quick    # 300 abstracts, the queries judged on them

Prints nDCG@10 (graded, gain = 5 - Cleverdon code), recall@100 and MRR as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rag_common import markdown_table, read_cranfield
from lmforge.eval.retrieval_metrics import mrr, ndcg_at_k, recall_at_k
from lmforge.rag.filters import ANONYMOUS
from lmforge.rag.pipeline import Pipeline


def evaluate(
    rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]
) -> tuple[float, float, float]:
    judged = [q for q in rankings if q in qrels]
    n = len(judged)
    return (
        sum(ndcg_at_k(rankings[q], qrels[q], 10) for q in judged) / n,
        sum(recall_at_k(rankings[q], qrels[q], 100) for q in judged) / n,
        sum(mrr(rankings[q], qrels[q]) for q in judged) / n,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 300-document subset (for a smoke run)"
    )
    parser.add_argument(
        "--store", default=None, help="store directory to build/reuse (default: a temp dir)"
    )
    args = parser.parse_args()

    docs, queries, qrels = read_cranfield()
    if args.quick:
        keep = sorted(docs, key=int)[:300]
        docs = {d: docs[d] for d in keep}
        qrels = {q: {d: g for d, g in rel.items() if d in docs} for q, rel in qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if rel}
    query_ids = [str(i) for i in range(1, len(queries) + 1) if str(i) in qrels]

    workdir = Path(tempfile.mkdtemp(prefix="lmforge-cranfield-"))
    corpus = workdir / "docs"
    corpus.mkdir()
    for doc_id, (title, text) in docs.items():
        safe_title = title.replace('"', "'")
        (corpus / f"{doc_id}.txt").write_text(f'---\ntitle: "{safe_title}"\n---\n{text}\n')
    rag = Pipeline.open(args.store or workdir / "store")
    t0 = time.perf_counter()
    report = rag.indexer(progress=True).run([corpus])
    print(
        f"indexed {len(docs)} abstracts into {report.chunks} chunks in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )

    rows = []
    for mode in ("lexical", "dense", "hybrid"):
        # ranking only: no per-hit similarity (it would add a query embedding to lexical mode)
        retriever = rag.retriever(mode=mode, candidates=200, dedup=False, similarity=False)
        rankings: dict[str, list[str]] = {}
        t = time.perf_counter()
        for q in query_ids:
            hits = retriever.run(queries[int(q) - 1], k=200, principal=ANONYMOUS).hits
            ranked = list(dict.fromkeys(h.chunk.path.removesuffix(".txt") for h in hits))
            rankings[q] = ranked[:100]
        per_query = (time.perf_counter() - t) / len(query_ids) * 1000
        name = {
            "lexical": "BM25 (ours, SQLite FTS5)",
            "dense": "dense (MiniLM, exact)",
            "hybrid": "hybrid (RRF k=60)",
        }[mode]
        rows.append([name, *evaluate(rankings, qrels), f"{per_query:.1f}"])

    import bm25s

    ids = list(docs)
    texts = [f"{docs[d][0]} {docs[d][1]}" for d in ids]
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    results, _ = retriever.retrieve(
        bm25s.tokenize(
            [queries[int(q) - 1] for q in query_ids], stopwords="en", show_progress=False
        ),
        k=min(100, len(ids)),
        show_progress=False,
    )
    per_query = (time.perf_counter() - t) / len(query_ids) * 1000
    rankings = {q: [ids[i] for i in results[n]] for n, q in enumerate(query_ids)}
    rows.append(
        ["bm25s (en stopwords)", *evaluate(rankings, qrels), f"{per_query:.1f} (incl. indexing)"]
    )

    print(f"\nCranfield: {len(docs)} abstracts, {len(query_ids)} judged queries\n")
    print(markdown_table(["method", "nDCG@10", "recall@100", "MRR", "ms/query"], rows))
    ours, theirs = rows[0], rows[-1]
    print(f"\nBM25 ours / bm25s nDCG@10 ratio: {ours[1] / theirs[1]:.3f}")
    rag.close()


if __name__ == "__main__":
    main()
