"""Metrics for retrieval-augmented answers.

An answer is split into statements (sentences). With a judge deciding whether a text supports a
statement (see ``judges``):

- ``faithfulness``: share of statements supported by the retrieved context (all chunks joined).
- ``citation_recall`` / ``citation_precision``: ALCE (Gao et al., 2023). A statement's citation
  recall is 1 when it cites at least one passage and the cited passages together support it.
  A citation is precise when the statement is supported and either that passage alone supports
  it or removing it breaks the support of the rest; for a single citation, when it supports the
  statement. Recall is averaged over statements, precision over citations.
- ``context_utilisation``: share of retrieved chunks the answer uses: cited, or supporting at
  least one statement.
- ``refusal``: a refusal on an unanswerable question is the correct answer; on an answerable
  question it is a miss. ``refusal_accuracy`` is the share of unanswerable questions refused.
- latency percentiles come from ``results.latency_summary``.

Answers with no statements (refusals) have no faithfulness or citation scores (None), and are
left out of those means, as ALCE does for empty answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lmforge.eval.judges import Judge

CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")

REFUSAL_PATTERNS = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|answer|find)|"
    r"(not|no) (enough )?(information|answer) (in|from|about)|"
    r"(context|documents?|sources?) (does|do) not (contain|mention|say|provide)|"
    r"unable to (answer|find)|cannot be answered|no relevant)",
    re.IGNORECASE,
)


def looks_like_refusal(answer: str) -> bool:
    """Fallback refusal detector for systems that do not flag refusals themselves."""
    return not answer.strip() or bool(REFUSAL_PATTERNS.search(answer))


@dataclass
class Statement:
    text: str  # without citation markers
    citations: list[int]  # the [n] markers it carries (1-based passage numbers)


def split_statements(answer: str) -> list[Statement]:
    """Sentences of an answer with the citation markers each carries.

    A marker that opens the next line or follows the full stop (``... 1990. [2]``) belongs to
    the sentence before it, as ALCE reads them.
    """
    # attach markers standing after a sentence end to that sentence
    text = re.sub(r"([.!?])\s*((?:\[\d+(?:\s*[,;]\s*\d+)*\]\s*)+)", r" \2\1 ", answer.strip())
    out = []
    for part in _SENTENCE_END.split(text):
        if part is None:
            continue
        cites = [int(n) for group in CITATION.findall(part) for n in re.split(r"[,;]\s*", group)]
        clean = " ".join(CITATION.sub(" ", part).split())
        clean = re.sub(r"\s+([.!?,;:])", r"\1", clean)
        if any(ch.isalnum() for ch in clean):
            out.append(Statement(clean, list(dict.fromkeys(cites))))
    return out


def faithfulness(
    statements: Sequence[Statement], contexts: Sequence[str], judge: Judge
) -> float | None:
    if not statements:
        return None
    premise = "\n\n".join(contexts)
    verdicts = judge.supports_batch([(premise, s.text) for s in statements])
    return sum(verdicts) / len(verdicts)


def citation_scores(
    statements: Sequence[Statement], passages: Mapping[int, str], judge: Judge
) -> tuple[float | None, float | None]:
    """ALCE citation recall and precision of one answer; ``passages``: n -> passage text."""
    if not statements:
        return None, None
    recall_hits = 0
    precise = 0
    total_citations = 0
    for s in statements:
        refs = [n for n in s.citations]
        total_citations += len(refs)
        if not refs or any(n not in passages for n in refs):
            continue  # uncited, or citing a passage that does not exist: not supported
        joint = judge.supports_batch([("\n".join(passages[n] for n in refs), s.text)])[0]
        recall_hits += joint
        if not joint:
            continue
        if len(refs) == 1:
            precise += 1
            continue
        alone = judge.supports_batch([(passages[n], s.text) for n in refs])
        for n, ok in zip(refs, alone, strict=True):
            if ok:
                precise += 1
                continue
            rest = "\n".join(passages[m] for m in refs if m != n)
            if not judge.supports_batch([(rest, s.text)])[0]:
                precise += 1  # needed: without it the rest no longer supports the statement
    recall = recall_hits / len(statements)
    precision = precise / total_citations if total_citations else 0.0
    return recall, precision


def context_utilisation(
    statements: Sequence[Statement], contexts: Sequence[str], cited: set[int], judge: Judge
) -> float | None:
    """Share of retrieved chunks (numbered 1..k) that are cited or support some statement."""
    if not contexts:
        return None
    used = 0
    for n, chunk in enumerate(contexts, start=1):
        if n in cited or (
            statements and any(judge.supports_batch([(chunk, s.text) for s in statements]))
        ):
            used += 1
    return used / len(contexts)


def refusal_correct(unanswerable: bool, refused: bool) -> bool:
    """A refusal is right exactly when the question has no answer in the store."""
    return refused == unanswerable
