"""Judges decide whether a premise (retrieved text) supports a statement (part of an answer).

Faithfulness and citation metrics only need that one decision, so the judge is an interface:

- ``OverlapJudge``: supported when enough of the statement's content words (SQuAD-normalised,
  stop words removed) occur in the premise. Deterministic and instant; a lexical proxy for
  entailment that rewards extractive answers and misses paraphrase.
- ``ModelJudge``: asks a language model (the bundled SmolLM2 by default) a verification
  question and compares the log-probabilities of "Yes" and "No". Slower, and only as good as
  the model; a 135M model is a weak judge, which the report should say.

Any object with ``supports_batch(pairs) -> list[bool]`` can serve as a judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lmforge.eval.metrics import normalize_answer

# A short English stop-word list: function words carry no evidence of support.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "not",
        "no",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "having",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "also",
        "than",
        "such",
        "into",
        "about",
        "over",
        "after",
        "before",
        "during",
        "while",
        "up",
        "down",
        "out",
        "very",
        "just",
        "only",
        "any",
        "all",
        "some",
        "each",
        "other",
        "more",
        "most",
    ]
)


class Judge(Protocol):
    def supports_batch(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (premise, statement): does the premise support the statement?"""
        ...


def content_tokens(text: str) -> list[str]:
    return [t for t in normalize_answer(text).split() if t not in STOP_WORDS]


class OverlapJudge:
    """Supported when >= ``threshold`` of the statement's content tokens appear in the premise."""

    name = "overlap"

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold

    def support_score(self, premise: str, statement: str) -> float:
        tokens = content_tokens(statement)
        if not tokens:
            return 1.0  # nothing to verify (e.g. "Yes.")
        vocab = set(content_tokens(premise))
        return sum(t in vocab for t in tokens) / len(tokens)

    def supports_batch(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        return [self.support_score(p, s) >= self.threshold for p, s in pairs]


VERIFY_PROMPT = (
    "Read the context and decide whether it supports the statement.\n\n"
    "Context:\n{premise}\n\nStatement: {statement}\n\n"
    "Is the statement supported by the context? Answer Yes or No."
)


class ModelJudge:
    """A language model answering a Yes/No verification prompt, scored by log-likelihood.

    ``lm`` is an ``lmforge.eval.lm.EvalModel``. With a chat template the question goes in a user
    turn and "Yes"/"No" are scored as the start of the assistant's reply.
    """

    name = "model"

    def __init__(self, lm, max_premise_chars: int = 3000, batch_tokens: int = 2048) -> None:
        self.lm = lm
        self.max_premise_chars = max_premise_chars
        self.batch_tokens = batch_tokens

    def _context(self, premise: str, statement: str) -> tuple[str, str, bool]:
        """(context, delimiter before Yes/No, whether the context holds chat-template markers)."""
        text = VERIFY_PROMPT.format(premise=premise[: self.max_premise_chars], statement=statement)
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            messages = [{"role": "user", "content": text}]
            return tok.apply_chat_template(messages, add_generation_prompt=True), "", True
        return text + "\nAnswer:", " ", False

    def supports_batch(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        from lmforge.eval.scoring import ChoiceRequest, score_choices

        requests = []
        for premise, statement in pairs:
            context, delim, special = self._context(premise, statement)
            requests.append(ChoiceRequest(context, [delim + "Yes", delim + "No"], special))
        scores = score_choices(self.lm, requests, batch_tokens=self.batch_tokens)
        return [yes > no for yes, no in scores]


def get_judge(name: str, lm=None) -> Judge:
    from lmforge.errors import LmforgeError

    if name == "overlap":
        return OverlapJudge()
    if name == "model":
        if lm is None:
            raise LmforgeError("the model judge needs a model (--judge-model)")
        return ModelJudge(lm)
    raise LmforgeError(f"unknown judge {name!r}: use 'overlap' or 'model'")
