"""`make demo`: index the bundled sample corpus, answer three questions with citations, and refuse
a fourth that the documents do not answer.

The store lives in the user's cache directory (``$XDG_CACHE_HOME/lmforge/demo-store``), so a second
run is incremental and finds every document unchanged. ``--store DIR`` picks another place and
``--extractive`` skips the language model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lmforge.assets import user_cache_dir

SAMPLE_CORPUS = Path(__file__).resolve().parent / "sample_corpus"

QUESTIONS = [
    "How do I handle an exception in Python?",
    "What does the break statement do in a loop?",
    "How do I create a virtual environment?",
    # pip has no such setting: an honest refusal names what the documents never mention
    "How many downloads does pip run at once with its parallel_downloads setting?",
]


def default_store() -> Path:
    return user_cache_dir() / "demo-store"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmforge-demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", default=str(default_store()), help="store directory (default: in the cache dir)"
    )
    parser.add_argument(
        "--extractive", action="store_true", help="answer without the language model"
    )
    parser.add_argument(
        "questions", nargs="*", help="questions to ask (default: four sample questions)"
    )
    args = parser.parse_args(argv)

    from lmforge.assets import DEFAULT_MODEL
    from lmforge.errors import LmforgeError
    from lmforge.rag.pipeline import Pipeline

    try:
        print(f"== Indexing the sample corpus ({SAMPLE_CORPUS}) into {args.store}")
        rag = Pipeline.open(args.store)
        report = rag.indexer(progress=sys.stderr.isatty()).run([SAMPLE_CORPUS], prune=True)
        print(report.summary())
        answerer = rag.answerer(None if args.extractive else DEFAULT_MODEL)
        for question in args.questions or QUESTIONS:
            t0 = time.perf_counter()
            answer = answerer.ask(question)
            print(f"\n== Q: {question}\n{answer.answer}")
            for c in answer.citations:
                quote = " ".join(c.quote.split())
                print(
                    f'  [{c.n}] {c.source} — {c.title}\n      "{quote[:180]}{"…" if len(quote) > 180 else ""}"'
                )
            print(f"  ({answer.mode}, {time.perf_counter() - t0:.1f}s)")
        rag.close()
    except LmforgeError as exc:
        print(f"lmforge: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
