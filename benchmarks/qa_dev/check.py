"""Verify the grounded-QA dev set (questions.jsonl) against the Python docs corpus. Standard library only.

    python benchmarks/qa_dev/check.py [--docs DIR] [-v]

Checks:
  * pages.txt: every page exists under the rst_sources root; sizes (warn above 150 KB, fail above 2.5 MB total).
  * schema: unique ids, required fields, allowed values for style/type/kind.
  * answerable: listed pages are in pages.txt; every answer regex compiles and matches (re.search, IGNORECASE)
    at least one of the listed pages; no regex matches a generic refusal / off-topic sentence.
  * unanswerable: pages and answer are empty; the "missing" term (case-insensitive substring) occurs in no
    indexed page; for kind "nonexistent" it occurs in no page of the whole corpus; for kind "unindexed-page"
    it does occur in some page outside pages.txt (so the fact really exists in the docs).
  * minimum counts from the brief (>= 62 answerable, >= 50 in users' words, >= 26 unanswerable).
Exit status 0 when everything passes, 1 otherwise. The last line is the summary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DOCS = Path("/work/shared/data/python-docs/rst_sources")

STYLES = {"users", "manual"}
TYPES = {"default", "quantity", "duration", "name", "yesno", "definition", "version"}
KINDS = {"nonexistent", "other-product", "unindexed-page", "off-topic"}
MAX_PAGE = 150_000
MAX_TOTAL = 2_500_000

# Answers that must never count as correct (refusals and unrelated text).
NEGATIVES = [
    "",
    "I don't know.",
    "I cannot answer that from the provided context.",
    "The provided documentation does not contain this information.",
    "No relevant information was found in the indexed pages.",
    "None of the retrieved passages mention this.",
    "Not found in the documentation.",
    "The quick brown fox jumps over the lazy dog.",
    "Python is a programming language that lets you work quickly and integrate systems more effectively.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="rst_sources root")
    ap.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    ap.add_argument("--pages", type=Path, default=HERE / "pages.txt")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each question's result")
    args = ap.parse_args()

    errors: list[str] = []
    warnings: list[str] = []

    # --- corpus --------------------------------------------------------------------------------
    indexed = [
        ln.strip()
        for ln in args.pages.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    if len(set(indexed)) != len(indexed):
        errors.append("pages.txt has duplicate entries")
    all_pages = {p.relative_to(args.docs).as_posix(): p for p in sorted(args.docs.rglob("*.txt"))}
    text: dict[str, str] = {}
    total = 0
    for rel in indexed:
        if rel not in all_pages:
            errors.append(f"pages.txt: {rel} does not exist under {args.docs}")
            continue
        data = all_pages[rel].read_text(encoding="utf-8", errors="replace")
        size = all_pages[rel].stat().st_size
        total += size
        if size > MAX_PAGE:
            warnings.append(f"pages.txt: {rel} is {size} bytes (> {MAX_PAGE})")
        text[rel] = data
    if total > MAX_TOTAL:
        errors.append(f"pages.txt: indexed pages total {total} bytes (> {MAX_TOTAL})")
    lower_indexed = {rel: t.lower() for rel, t in text.items()}
    lower_all: dict[str, str] | None = (
        None  # read lazily: only nonexistent/unindexed checks need it
    )

    def corpus_lower() -> dict[str, str]:
        nonlocal lower_all
        if lower_all is None:
            lower_all = {
                rel: p.read_text(encoding="utf-8", errors="replace").lower()
                for rel, p in all_pages.items()
            }
        return lower_all

    # --- questions -----------------------------------------------------------------------------
    rows = []
    for n, line in enumerate(args.questions.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            errors.append(f"questions.jsonl line {n}: invalid JSON ({e})")
    ids = Counter(r.get("id") for r in rows)
    for qid, c in ids.items():
        if c > 1:
            errors.append(f"duplicate id {qid}")
    questions = Counter(r.get("question", "").strip().lower() for r in rows)
    for q, c in questions.items():
        if c > 1:
            errors.append(f"duplicate question text: {q!r}")

    n_ans = n_unans = 0
    by_style, by_type, by_kind, adjacent = Counter(), Counter(), Counter(), 0
    for r in rows:
        qid = r.get("id", "?")
        problems: list[str] = []
        for field in ("id", "question", "answerable", "pages", "answer", "note"):
            if field not in r:
                problems.append(f"missing field {field!r}")
        if r.get("answerable") is True:
            n_ans += 1
            style, typ = r.get("style"), r.get("type")
            by_style[style] += 1
            by_type[typ] += 1
            adjacent += bool(r.get("adjacent"))
            if style not in STYLES:
                problems.append(f"style {style!r} not in {sorted(STYLES)}")
            if typ not in TYPES:
                problems.append(f"type {typ!r} not in {sorted(TYPES)}")
            pages = r.get("pages") or []
            regexes = r.get("answer") or []
            if not pages:
                problems.append("answerable but no pages")
            if not regexes:
                problems.append("answerable but no answer regexes")
            for p in pages:
                if p not in text:
                    problems.append(f"page {p} is not in pages.txt")
            for rx in regexes:
                try:
                    pat = re.compile(rx, re.IGNORECASE)
                except re.error as e:
                    problems.append(f"regex {rx!r} does not compile: {e}")
                    continue
                hits = [p for p in pages if p in text and pat.search(text[p])]
                if not hits:
                    problems.append(f"regex {rx!r} matches none of its pages {pages}")
                for neg in NEGATIVES:
                    if pat.search(neg):
                        problems.append(f"regex {rx!r} also matches the unrelated answer {neg!r}")
        elif r.get("answerable") is False:
            n_unans += 1
            kind, missing = r.get("kind"), (r.get("missing") or "").strip()
            by_kind[kind] += 1
            if kind not in KINDS:
                problems.append(f"kind {kind!r} not in {sorted(KINDS)}")
            if r.get("pages") or r.get("answer"):
                problems.append("unanswerable but pages/answer not empty")
            if not missing:
                problems.append("unanswerable without a 'missing' term")
            else:
                m = missing.lower()
                found = [p for p, t in lower_indexed.items() if m in t]
                if found:
                    problems.append(f"missing term {missing!r} occurs in indexed page(s) {found}")
                if kind == "nonexistent":
                    found = [p for p, t in corpus_lower().items() if m in t]
                    if found:
                        problems.append(
                            f"missing term {missing!r} occurs in the corpus: {found[:5]}"
                        )
                if kind == "unindexed-page":
                    found = [p for p, t in corpus_lower().items() if m in t and p not in text]
                    if not found:
                        problems.append(f"missing term {missing!r} occurs in no unindexed page")
                    elif args.verbose:
                        print(
                            f"  {qid}: {missing!r} found only outside the index, e.g. {found[:3]}"
                        )
                if missing.lower() not in r.get("question", "").lower():
                    warnings.append(
                        f"{qid}: missing term {missing!r} is not quoted in the question"
                    )
        else:
            problems.append("answerable must be true or false")
        for p in problems:
            errors.append(f"{qid}: {p}")
        if args.verbose:
            print(f"{qid} {'OK ' if not problems else 'BAD'} {r.get('question', '')[:90]}")

    # --- minimums ------------------------------------------------------------------------------
    if n_ans < 62:
        errors.append(f"only {n_ans} answerable questions (need >= 62)")
    if by_style["users"] < 50:
        errors.append(f"only {by_style['users']} answerable questions in users' words (need >= 50)")
    if n_unans < 26:
        errors.append(f"only {n_unans} unanswerable questions (need >= 26)")

    for w in warnings:
        print("warning:", w)
    for e in errors:
        print("error:", e)
    print(f"pages: {len(indexed)} indexed, {total / 1e6:.2f} MB")
    print(
        f"answerable: {n_ans} (style {dict(sorted(by_style.items()))}; type {dict(sorted(by_type.items()))}; "
        f"fact in adjacent sentence: {adjacent})"
    )
    print(f"unanswerable: {n_unans} (kind {dict(sorted(by_kind.items()))})")
    status = "PASS" if not errors else f"FAIL ({len(errors)} errors)"
    print(
        f"{status}: {n_ans} answerable questions, all regexes matching their pages: {'yes' if not errors else 'see errors'}; "
        f"{n_unans} unanswerable, missing terms absent from the index: {'yes' if not errors else 'see errors'}"
    )
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
