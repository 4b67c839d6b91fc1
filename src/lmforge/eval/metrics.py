"""Text metrics, each following its reference definition.

- ``exact_match`` / ``f1_score``: the official SQuAD v1.1 evaluation script. Answers are
  normalised (lower case, punctuation removed, the articles a/an/the removed, whitespace
  collapsed); F1 is the harmonic mean of token precision and recall over the bag of tokens; both
  take the maximum over the gold answers.
- ``bleu`` / ``chrf``: sacrebleu (corpus level, with its default tokenisation), not re-implemented.
- ``rouge``: Google's rouge-score package (ROUGE-1/2/L/Lsum F-measures).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from lmforge.errors import LmforgeError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, drop punctuation and articles, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(gold: str | Sequence[str]) -> list[str]:
    golds = [gold] if isinstance(gold, str) else list(gold)
    if not golds:
        raise LmforgeError("no gold answers given: EM/F1 need at least one reference answer")
    return golds


def _exact_match_one(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1_one(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    return max(_exact_match_one(prediction, g) for g in _golds(gold))


def f1_score(prediction: str, gold: str | Sequence[str]) -> float:
    """SQuAD token F1 between prediction and the best-matching gold answer (0.0-1.0)."""
    return max(_f1_one(prediction, g) for g in _golds(gold))


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean EM and F1 in percent over a set, as the official script reports them."""
    if len(predictions) != len(golds):
        raise LmforgeError(
            f"{len(predictions)} predictions but {len(golds)} gold answer lists: they must pair up"
        )
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    em = sum(exact_match(p, g) for p, g in zip(predictions, golds, strict=True))
    f1 = sum(f1_score(p, g) for p, g in zip(predictions, golds, strict=True))
    n = len(predictions)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def _references_by_stream(
    hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
) -> list[list[str]]:
    """sacrebleu wants references as streams: refs[j][i] is the j-th reference of sentence i."""
    if len(hypotheses) != len(references):
        raise LmforgeError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: they must pair up"
        )
    per_sentence = [[r] if isinstance(r, str) else list(r) for r in references]
    n_refs = {len(r) for r in per_sentence}
    if len(n_refs) > 1 or 0 in n_refs:
        raise LmforgeError("every hypothesis needs the same number (>= 1) of references")
    width = n_refs.pop() if n_refs else 1
    return [[refs[j] for refs in per_sentence] for j in range(width)]


def bleu(
    hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], **kwargs
) -> float:
    """Corpus BLEU (0-100) through sacrebleu; ``kwargs`` go to ``sacrebleu.metrics.BLEU``."""
    from sacrebleu.metrics import BLEU

    refs = _references_by_stream(hypotheses, references)
    return float(BLEU(**kwargs).corpus_score(list(hypotheses), refs).score)


def chrf(
    hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], **kwargs
) -> float:
    """Corpus chrF (0-100) through sacrebleu; pass ``word_order=2`` for chrF++."""
    from sacrebleu.metrics import CHRF

    refs = _references_by_stream(hypotheses, references)
    return float(CHRF(**kwargs).corpus_score(list(hypotheses), refs).score)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge(
    prediction: str,
    reference: str,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """ROUGE F-measures (0.0-1.0) of one prediction against one reference, via rouge-score.

    ROUGE-Lsum splits summaries into sentences on newlines, as rouge-score defines it.
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    scores = scorer.score(reference, prediction)  # rouge-score's order: (target, prediction)
    return {name: float(score.fmeasure) for name, score in scores.items()}


def corpus_rouge(
    predictions: Sequence[str],
    references: Sequence[str],
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Mean ROUGE F-measures over pairs (the usual way papers report ROUGE for a set)."""
    if len(predictions) != len(references):
        raise LmforgeError(
            f"{len(predictions)} predictions but {len(references)} references: they must pair up"
        )
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        for name, score in scorer.score(ref, pred).items():
            totals[name] += score.fmeasure
    n = max(len(predictions), 1)
    return {name: total / n for name, total in totals.items()}
