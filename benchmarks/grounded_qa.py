"""Grounded QA on the Python-docs development set and on XQuAD-en, the model beside the extractive answerer.

    python benchmarks/grounded_qa.py                      # both sets, both answerers (slow: one generation per question)
    python benchmarks/grounded_qa.py --set dev --no-llm   # the development set, extractive answerer only
    python benchmarks/grounded_qa.py --set xquad --limit 100
    python benchmarks/grounded_qa.py --quick --no-llm     # a smoke run: a few questions per set
    python benchmarks/grounded_qa.py --store-dir stores/ --json grounded_qa.json --show-failures 5

The sets:
- dev: benchmarks/qa_dev/ (see its README.md). The 40 pages of pages.txt are indexed; its 96
  answerable questions (81 in users' words, 15 in the manual's) and 30 unanswerable ones (24 near
  the domain: APIs that do not exist, other products' features, facts on pages not indexed; 6
  off-topic) are asked.
- xquad: XQuAD-en. Its 240 paragraphs are indexed one file each, and all 1,190 questions asked;
  then 300 of them, spread over all articles, are asked again with retrieval restricted to every
  paragraph but the gold one (as if it had not been indexed: only related paragraphs of the same
  article remain), which makes them unanswerable.

Per answerer (the model with --model and --style, then the extractive answerer alone) and set:
hit@5 (a gold page among the top 5 retrieved), cited (over answered questions: a gold page among the
citations on the dev set, the first citation from the gold paragraph on XQuAD), the answer's quality
(dev: "fact", an answer regex matches the answer; XQuAD: EM and F1 after SQuAD normalization, with
citations stripped; a refusal scores 0), the refused rates of answerable and of unanswerable
questions, and p50/p95 latency per question. On the dev set answerable metrics are split by question
style (users / manual) and unanswerable refusals into near-domain / off-topic.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rag_common import SHARED_DATA, markdown_table, percentile, spread
from lmforge.assets import DEFAULT_MODEL
from lmforge.eval.metrics import exact_match, f1_score
from lmforge.rag.answer import Answer, GroundedAnswerer, strip_citations
from lmforge.rag.filters import Filters, parse_filters
from lmforge.rag.pipeline import Pipeline
from lmforge.rag.types import ChatModel

DEV_DIR = Path(__file__).resolve().parent / "qa_dev"
RST_SOURCES = SHARED_DATA / "python-docs" / "rst_sources"
XQUAD = SHARED_DATA / "xquad-en" / "xquad.en.json"
XQUAD_UNANSWERABLE = 300  # questions asked again without their gold paragraph
NEAR_DOMAIN = {"nonexistent", "other-product", "unindexed-page"}
QUICK_LIMIT = 30  # questions per set with --quick
EXTRACTIVE = "extractive reader, no model"


@dataclass(frozen=True)
class Case:
    """One question as asked: its gold pages (none when unanswerable), the group it is reported
    in, its gold answers (regexes on the dev set, spans on XQuAD) and its retrieval filters."""

    qid: str
    question: str
    group: str
    pages: tuple[str, ...] = ()
    golds: tuple[str, ...] = ()
    filters: Filters | None = None

    @property
    def answerable(self) -> bool:
        return bool(self.pages)


@dataclass
class QASet:
    """A corpus to index (relative path -> file text), the cases to ask of it, and how answers to
    its answerable cases are scored: ``score`` gives the ``quality`` metrics of a prediction (the
    last one, at 0.5 or more, counts as correct for --show-failures), ``cited`` whether the
    citations point at a gold page."""

    name: str
    title: str
    files: dict[str, str]
    cases: list[Case]
    answerable_groups: tuple[str, ...]
    unanswerable_groups: tuple[str, ...]
    quality: tuple[str, ...]
    score: Callable[[Case, str], dict[str, float]]
    cited: Callable[[Case, Answer], bool]
    style: str  # the model's answer style unless --style says otherwise


# --- the development set ------------------------------------------------------------------------


def dev_group(record: dict) -> str:
    """Where a dev question is reported: its style if answerable, else near-domain or off-topic."""
    if record["answerable"]:
        return record["style"]
    return "near-domain" if record["kind"] in NEAR_DOMAIN else "off-topic"


def contains_fact(case: Case, prediction: str) -> dict[str, float]:
    """fact: any of the case's answer regexes matches the prediction (case-insensitive)."""
    return {"fact": float(any(re.search(rx, prediction, re.IGNORECASE) for rx in case.golds))}


def cites_any_gold(case: Case, answer: Answer) -> bool:
    """Whether any citation is from one of the case's pages."""
    return any(c.source in case.pages for c in answer.citations)


def load_dev(limit: int | None) -> QASet:
    """The pages of qa_dev/pages.txt and its questions (``limit`` of them, spread over the set)."""
    pages = [p.strip() for p in (DEV_DIR / "pages.txt").read_text().splitlines() if p.strip()]
    lines = (DEV_DIR / "questions.jsonl").read_text().splitlines()
    cases = [
        Case(r["id"], r["question"], dev_group(r), tuple(r["pages"]), tuple(r["answer"]))
        for r in (json.loads(line) for line in lines if line.strip())
    ]
    return QASet(
        name="dev",
        title="Python docs development set (benchmarks/qa_dev)",
        files={rel: (RST_SOURCES / rel).read_text(encoding="utf-8") for rel in pages},
        cases=spread(cases, limit),
        answerable_groups=("users", "manual"),
        unanswerable_groups=("near-domain", "off-topic"),
        quality=("fact",),
        score=contains_fact,
        cited=cites_any_gold,
        style="quote",
    )


# --- XQuAD-en -----------------------------------------------------------------------------------


def load_xquad(path: Path = XQUAD):
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


def squad_scores(case: Case, prediction: str) -> dict[str, float]:
    """EM and F1 of the prediction against the gold spans (SQuAD normalization)."""
    return {"EM": exact_match(prediction, case.golds), "F1": f1_score(prediction, case.golds)}


def cites_gold_first(case: Case, answer: Answer) -> bool:
    """Whether the first citation is from the gold paragraph."""
    return bool(answer.citations) and answer.citations[0].source in case.pages


def xquad_cases(paragraphs, questions, limit: int | None) -> list[Case]:
    """The answerable questions, then the unanswerable variants: each asked with a filter that
    leaves every paragraph but its gold one. ``limit`` caps both together, in the full run's
    proportion."""
    n_unanswerable = XQUAD_UNANSWERABLE
    if limit is not None:
        n_unanswerable = round(limit * XQUAD_UNANSWERABLE / (len(questions) + XQUAD_UNANSWERABLE))
    n_answerable = None if limit is None else limit - n_unanswerable
    numbered = list(enumerate(questions))
    cases = [
        Case(f"xquad-{i:04d}", q, "answerable", (doc,), tuple(golds))
        for i, (q, golds, doc) in spread(numbered, n_answerable)
    ]
    for i, (q, golds, doc) in spread(numbered, n_unanswerable):
        others = [p for p in paragraphs if p != doc]
        only_others = parse_filters({"source": {"in": others}})
        cases.append(
            Case(f"xquad-{i:04d}-u", q, "unanswerable", golds=tuple(golds), filters=only_others)
        )
    return cases


def load_xquad_set(limit: int | None) -> QASet:
    """XQuAD-en: a file per paragraph (with its article's title), the questions as `xquad_cases`."""
    paragraphs, questions = load_xquad()
    return QASet(
        name="xquad",
        title="XQuAD-en",
        files={
            doc: f'---\ntitle: "{title}"\n---\n{text}\n'
            for doc, (title, text) in paragraphs.items()
        },
        cases=xquad_cases(paragraphs, questions, limit),
        answerable_groups=("answerable",),
        unanswerable_groups=("unanswerable",),
        quality=("EM", "F1"),
        score=squad_scores,
        cited=cites_gold_first,
        style="short",
    )


# --- running ------------------------------------------------------------------------------------


def write_corpus(files: dict[str, str], folder: Path) -> Path:
    """Write the set's files under ``folder``, keeping their relative paths."""
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def index_corpus(rag: Pipeline, corpus: Path, source: str) -> dict:
    """Index the corpus as one named source (so a reused store finds its documents unchanged,
    wherever the temporary corpus lies) and prune what it no longer holds."""
    t0 = time.perf_counter()
    report = rag.indexer(progress=True, source=source).run([corpus], prune=True)
    stats = rag.store.stats()
    return {
        "documents": stats["documents"],
        "chunks": stats["chunks"],
        "embedded": report.embedded,
        "skipped": len(report.skipped),
        "seconds": time.perf_counter() - t0,
    }


_chat_models: dict[str, ChatModel] = {}


def answerers(rag: Pipeline, args, qa: QASet) -> list[tuple[str, GroundedAnswerer]]:
    """(label, answerer): the model's (unless --no-llm; loaded once for all sets), then the
    extractive one."""
    out = []
    style = args.style or qa.style
    if not args.no_llm:
        if args.model not in _chat_models:
            _chat_models[args.model] = rag.load_chat(args.model)
        label = f"{args.model} grounded ({style})"
        out.append((label, rag.answerer(_chat_models[args.model], style=style)))
    out.append((f"{EXTRACTIVE} ({style})", rag.answerer(None, style=style)))
    return out


def answer_text(answer: Answer) -> str:
    """The prediction scored against the gold: citations and quotes removed; "" for a refusal."""
    if answer.refused:
        return ""
    text = strip_citations(answer.answer)
    text = re.sub(r"\[unsupported\]", "", text)
    return text.strip().strip('"').strip()


def score_case(qa: QASet, case: Case, answer: Answer, ms: float) -> dict:
    """One answer's record: every case has its refusal and latency; answerable ones add hit@5,
    cited (when answered) and the set's quality metrics."""
    record = {"case": case, "answer": answer, "refused": answer.refused, "ms": ms}
    if case.answerable:
        record["hit@5"] = any(h.chunk.path in case.pages for h in answer.retrieved[:5])
        if not answer.refused:
            record["cited"] = qa.cited(case, answer)
        record.update(qa.score(case, answer_text(answer)))
    return record


def ask_all(answerer: GroundedAnswerer, qa: QASet, label: str) -> list[dict]:
    """Ask every case of the set, timing each; one `score_case` record per case."""
    records = []
    for case in tqdm(qa.cases, desc=f"{qa.name}: {label}", unit="q", file=sys.stderr):
        t = time.perf_counter()
        answer = answerer.ask(case.question, filters=case.filters)
        records.append(score_case(qa, case, answer, (time.perf_counter() - t) * 1000))
    return records


# --- reporting ----------------------------------------------------------------------------------


def mean(records: Sequence[dict], key: str) -> float | None:
    """The mean of a metric over the records that have it (None when none do)."""
    values = [float(r[key]) for r in records if key in r]
    return sum(values) / len(values) if values else None


def groups_of(records: Sequence[dict], groups: tuple[str, ...]) -> dict[str, list[dict]]:
    """The records by group, after "all" of them (the groups alone when there is only one)."""
    out = {"all": list(records)}
    if len(groups) > 1:
        out.update({g: [r for r in records if r["case"].group == g] for g in groups})
    return out


def summarize(qa: QASet, records: list[dict]) -> dict:
    """An answerer's metrics on a set: per answerable group hit@5, cited, quality and refused;
    per unanswerable group the refused rate; latency over all questions."""
    answerable = [r for r in records if r["case"].answerable]
    unanswerable = [r for r in records if not r["case"].answerable]
    metrics = ("hit@5", "cited", *qa.quality, "refused")
    latencies = [r["ms"] for r in records]
    return {
        "answerable": {
            group: {"questions": len(rs), **{m: mean(rs, m) for m in metrics}}
            for group, rs in groups_of(answerable, qa.answerable_groups).items()
        },
        "unanswerable": {
            group: {"questions": len(rs), "refused": mean(rs, "refused")}
            for group, rs in groups_of(unanswerable, qa.unanswerable_groups).items()
        },
        "p50 ms": percentile(latencies, 50),
        "p95 ms": percentile(latencies, 95),
    }


def shown_groups(groups: tuple[str, ...]) -> tuple[str, ...]:
    """The groups a table cell shows: each one, or "all" when there is only one."""
    return groups if len(groups) > 1 else ("all",)


def header(name: str, groups: tuple[str, ...]) -> str:
    """A column header, naming the groups its cells split into."""
    return name if groups == ("all",) else f"{name} ({' / '.join(groups)})"


def cell(values: Sequence[float | None]) -> str:
    """Rates joined by " / ", "n/a" where a group had no question to measure."""
    return " / ".join("n/a" if v is None else f"{v:.3f}" for v in values)


def set_table(qa: QASet, summaries: dict[str, dict]) -> str:
    """One Markdown row per answerer: answerable metrics, unanswerable refusals, latency."""
    a_groups = shown_groups(qa.answerable_groups)
    u_groups = shown_groups(qa.unanswerable_groups)
    metrics = ("hit@5", "cited", *qa.quality, "refused")
    headers = [
        "answerer",
        "questions",
        *[header("answerable refused" if m == "refused" else m, a_groups) for m in metrics],
        header("unanswerable refused", u_groups),
        "p50 ms",
        "p95 ms",
    ]
    rows = []
    for label, s in summaries.items():
        a, u = s["answerable"], s["unanswerable"]
        rows.append(
            [
                label,
                a["all"]["questions"] + u["all"]["questions"],
                *[cell([a[g][m] for g in a_groups]) for m in metrics],
                cell([u[g]["refused"] for g in u_groups]),
                f"{s['p50 ms']:.0f}",
                f"{s['p95 ms']:.0f}",
            ]
        )
    return markdown_table(headers, rows)


def question_counts(qa: QASet) -> dict[str, int]:
    """How many questions of each group the set asks, answerable groups first."""
    groups = (*qa.answerable_groups, *qa.unanswerable_groups)
    return {g: sum(case.group == g for case in qa.cases) for g in groups}


def print_report(qa: QASet, result: dict) -> None:
    """The set's heading (documents, questions by group), its table and its indexing time."""
    counts = ", ".join(f"{n} {group}" for group, n in result["questions"].items())
    index = result["index"]
    print(f"\n{qa.title}: {index['documents']} documents, {len(qa.cases)} questions ({counts})\n")
    print(set_table(qa, result["answerers"]))
    print(
        f"\nindexing: {index['documents']} documents, {index['chunks']} chunks "
        f"({index['embedded']} embedded in this run, {index['skipped']} skipped) in {index['seconds']:.1f}s",
        flush=True,
    )


def show_failures(qa: QASet, label: str, records: list[dict], n: int) -> None:
    """Print to stderr up to ``n`` answerable questions answered wrongly (or refused) and ``n``
    unanswerable ones that were answered, with each answer and its first citation's quote."""
    correct = qa.quality[-1]
    wrong = [r for r in records if r["case"].answerable and r[correct] < 0.5][:n]
    answered = [r for r in records if not r["case"].answerable and not r["refused"]][:n]
    for title, chosen in (("wrong or refused", wrong), ("unanswerable but answered", answered)):
        print(f"\n== {qa.name}, {label}: {title} ({len(chosen)} shown)", file=sys.stderr)
        for r in chosen:
            case, answer = r["case"], r["answer"]
            print(f"[{case.qid}, {case.group}] {case.question}", file=sys.stderr)
            if case.answerable:
                print(f"  gold: {case.golds[0]!r} in {', '.join(case.pages)}", file=sys.stderr)
            print(f"  answer [{answer.mode}]: {answer.answer!r}", file=sys.stderr)
            if answer.citations:
                first = answer.citations[0]
                print(f"  quote ({first.source}): {first.quote!r}", file=sys.stderr)


def run_set(qa: QASet, args) -> dict:
    """Index the set's corpus, ask its cases with each answerer, print and return the metrics."""
    with tempfile.TemporaryDirectory(prefix=f"lmforge-{qa.name}-") as tmp:
        corpus = write_corpus(qa.files, Path(tmp) / "docs")
        store = Path(args.store_dir) / qa.name if args.store_dir else Path(tmp) / "store"
        with Pipeline.open(store) as rag:
            index = index_corpus(rag, corpus, qa.name)
            summaries = {}
            for label, answerer in answerers(rag, args, qa):
                records = ask_all(answerer, qa, label)
                summaries[label] = summarize(qa, records)
                if args.show_failures:
                    show_failures(qa, label, records, args.show_failures)
    result = {"index": index, "questions": question_counts(qa), "answerers": summaries}
    print_report(qa, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["dev", "xquad", "all"], default="all")
    parser.add_argument(
        "--limit", type=int, default=None, help="ask at most N questions per set (spread over it)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_LIMIT} questions per set, a smoke run"
    )
    parser.add_argument("--no-llm", action="store_true", help="only the extractive answerer")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--style",
        default=None,
        choices=["quote", "short", "sentence"],
        help="answer style asked of the model (default: quote on dev, short on XQuAD)",
    )
    parser.add_argument(
        "--store-dir",
        default=None,
        help="folder for the sets' stores, built or reused (default: temp dirs)",
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="write all metrics to OUT")
    parser.add_argument(
        "--show-failures",
        type=int,
        default=0,
        metavar="N",
        help="print up to N wrong answers and N answered unanswerable questions per answerer",
    )
    args = parser.parse_args()

    limit = QUICK_LIMIT if args.quick and args.limit is None else args.limit
    loaders = {"dev": load_dev, "xquad": load_xquad_set}
    names = list(loaders) if args.set == "all" else [args.set]
    results = {name: run_set(loaders[name](limit), args) for name in names}
    if args.json:
        settings = {**{k: v for k, v in vars(args).items() if k != "json"}, "limit": limit}
        Path(args.json).write_text(json.dumps({"settings": settings, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
