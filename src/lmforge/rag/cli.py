"""`lmforge index` and `lmforge ask`: thin wrappers over lmforge.rag."""

from __future__ import annotations

import argparse
import json
import sys

from lmforge.assets import DEFAULT_MODEL, PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index",
        help="ingest documents into a store (incremental)",
        description="Index txt, md, rst, html and pdf files (directories recursively) into a store. "
        "Each folder indexed is a source, named after the folder (or --source NAME); a document is "
        "known by its source and its path inside it, so folders with the same file names never "
        "replace each other's documents. Unchanged files are skipped; changed files replace their "
        "chunks; --prune removes documents of the indexed folders whose files are gone. Text that "
        "is not UTF-8 is decoded by detection; symbolic links that lead outside the folder are "
        "skipped unless --follow-links.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to index")
    p.add_argument("--store", required=True, help="store directory, or a postgresql:// URL")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files matching GLOB (repeatable)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files matching GLOB (repeatable)",
    )
    p.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for every document (repeatable)",
    )
    p.add_argument(
        "--allow-group",
        action="append",
        default=None,
        metavar="GROUP",
        help="only this group may read the documents (repeatable); default: front matter allowed_groups, else public",
    )
    p.add_argument(
        "--source",
        default=None,
        metavar="NAME",
        help="name of the source the PATHs belong to (default: the folder's name; "
        "reuse a name to keep a moved folder's documents)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove documents under the indexed PATHs whose files are gone",
    )
    p.add_argument(
        "--follow-links",
        action="store_true",
        help="follow symbolic links that lead outside the indexed folder (default: skip them)",
    )
    p.add_argument(
        "--chunk-tokens",
        type=int,
        default=200,
        help="chunk budget in embedder tokens (default 200)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=32,
        help="overlap between chunks of a long paragraph, in tokens (default 32)",
    )
    p.add_argument(
        "--embedder", default=None, help="'minilm' (default), a model directory, or st:DIR"
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="embedder precision (auto: bf16 on AMX CPUs)",
    )
    p.add_argument(
        "--batch-chunks",
        type=int,
        default=256,
        help="chunks embedded and committed together (default 256)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_index)

    a = subparsers.add_parser(
        "ask",
        help="answer a question from a store, with citations",
        description="Retrieve (hybrid BM25 + dense), read the passages for the sentences that "
        "answer (reranked by the bundled model), and quote them with citations; refuse, saying "
        "what is missing, when the documents do not answer.",
    )
    a.add_argument("question", help="the question")
    a.add_argument("--store", required=True, help="store directory, or a postgresql:// URL")
    a.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (answer, refused, citations, retrieved, timings_ms)",
    )
    a.add_argument("--k", type=int, default=8, help="chunks to retrieve and read (default 8)")
    a.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata filter: key=value, key=a|b, key>=x, key<=x (repeatable)",
    )
    a.add_argument(
        "--principal", default=None, help="who is asking (sees documents allowed to user:NAME)"
    )
    a.add_argument("--groups", default="", help="comma-separated groups of the principal")
    a.add_argument(
        "--mode", default="hybrid", choices=["hybrid", "lexical", "dense"], help="retrieval mode"
    )
    a.add_argument(
        "--model", default=DEFAULT_MODEL, help="chat model for answering (default: %(default)s)"
    )
    a.add_argument(
        "--extractive",
        action="store_true",
        help="no language model: the reader alone picks the sentences to quote",
    )
    a.add_argument(
        "--mmr",
        type=float,
        default=None,
        metavar="LAMBDA",
        help="rerank by maximal marginal relevance",
    )
    a.add_argument(
        "--llm-rerank", action="store_true", help="let the model grade candidate relevance (slow)"
    )
    a.add_argument(
        "--style",
        default="quote",
        choices=["quote", "sentence", "short"],
        help="quote: the sentences that answer, quoted and cited (default); sentence: the model "
        "writes cited sentences, each checked against its source; short: a short phrase read "
        "from the best sentence",
    )
    a.add_argument(
        "--unsupported",
        default="drop",
        choices=["drop", "flag"],
        help="unsupported answer sentences: drop or flag",
    )
    a.add_argument(
        "--min-relevance",
        type=float,
        default=0.25,
        help="refuse below this retrieval relevance (default 0.25)",
    )
    a.add_argument(
        "--embedder", default=None, help="embedder the store was built with (default minilm)"
    )
    a.set_defaults(func=run_ask)


def run_index(args: argparse.Namespace) -> int:
    from lmforge.errors import LmforgeError
    from lmforge.rag.indexer import parse_meta
    from lmforge.rag.pipeline import Pipeline

    if args.chunk_tokens < 16:
        raise LmforgeError(f"--chunk-tokens {args.chunk_tokens}: must be at least 16")
    with Pipeline.open(args.store, embedder=args.embedder, precision=args.precision) as rag:
        indexer = rag.indexer(
            chunk_tokens=args.chunk_tokens,
            overlap_tokens=args.overlap,
            meta=parse_meta(args.meta),
            allowed_groups=[g for item in args.allow_group for g in item.split(",") if g]
            if args.allow_group
            else None,
            include=args.include,
            exclude=args.exclude,
            batch_chunks=args.batch_chunks,
            progress=not args.no_progress,
            source=args.source,
            follow_links=args.follow_links,
        )
        report = indexer.run(args.paths, prune=args.prune)
    print(report.summary())
    return 0


def run_ask(args: argparse.Namespace) -> int:
    from lmforge.rag.filters import Principal, parse_filters
    from lmforge.rag.pipeline import Pipeline

    filters = parse_filters(args.filter)
    principal = Principal(
        args.principal, tuple(g.strip() for g in args.groups.split(",") if g.strip())
    )
    with Pipeline.open(args.store, embedder=args.embedder, create=False) as rag:
        answerer = rag.answerer(
            None if args.extractive else args.model,
            mode=args.mode,
            mmr_lambda=args.mmr,
            llm_rerank=args.llm_rerank,
            k=args.k,
            unsupported=args.unsupported,
            style=args.style,
            min_relevance=args.min_relevance,
        )
        answer = answerer.ask(args.question, filters=filters, principal=principal)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return 0
    print(answer.answer)
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            where = f"{c.source_name}: {c.source}" if c.source_name else c.source
            print(f"  [{c.n}] {where} — {c.title}")
            print(f'      "{_clip(c.quote, 200)}"')
    if args.style == "sentence" and answer.mode == "extractive":
        print(
            "\n(no generated sentence held up: the best supporting sentence, quoted)",
            file=sys.stderr,
        )
    return 0


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
