"""Shared helpers for the RAG benchmarks (data readers, timing, Markdown tables)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_cranfield(
    root: Path = SHARED_DATA / "cranfield",
) -> tuple[dict[str, tuple[str, str]], list[str], dict[str, dict[str, int]]]:
    """(docs: id -> (title, text), queries in file order, qrels: query number (1-based) -> doc id -> gain).

    Cleverdon's codes run 1 (complete answer) to 4 (minimum interest); gains are 5 - code so that
    graded nDCG rewards the most relevant documents most.
    """
    docs: dict[str, tuple[str, str]] = {}
    for record in re.split(r"^\.I ", (root / "cran.all.1400").read_text(), flags=re.MULTILINE)[1:]:
        doc_id, _, body = record.partition("\n")
        fields = dict(
            re.findall(
                r"^\.([TABW])\n(.*?)(?=^\.[TABW]\n|\Z)", body, flags=re.MULTILINE | re.DOTALL
            )
        )
        title = " ".join(fields.get("T", "").split())
        text = " ".join(fields.get("W", "").split())
        docs[doc_id.strip()] = (title, text or title)
    queries = []
    for record in re.split(r"^\.I ", (root / "cran.qry").read_text(), flags=re.MULTILINE)[1:]:
        _, _, body = record.partition("\n.W\n")
        queries.append(" ".join(body.split()))
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "cranqrel").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 3 and 1 <= int(parts[2]) <= 4:
            qrels.setdefault(parts[0], {})[parts[1]] = 5 - int(parts[2])
    return docs, queries, qrels


def spread(items: Sequence[T], n: int | None) -> list[T]:
    """``n`` items evenly spaced over the whole sequence, in order (all of them when ``n`` is None
    or not smaller): a sample that covers every part of a set, not only its first ones."""
    if n is None or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(max(n, 0))]


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")
