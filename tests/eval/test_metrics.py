"""Parity of the text metrics with their reference definitions.

The SQuAD v1.1 reference below is the official evaluation script's logic (evaluate-v1.1.py),
written out inline; BLEU, chrF and ROUGE are compared with sacrebleu and rouge-score directly.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest

from lmforge.errors import LmforgeError
from lmforge.eval.metrics import (
    bleu,
    chrf,
    corpus_rouge,
    exact_match,
    f1_score,
    normalize_answer,
    rouge,
    squad_scores,
)


# --- the official SQuAD v1.1 script (evaluate-v1.1.py), as the reference -----------------------
def ref_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def ref_f1_score(prediction, ground_truth):
    prediction_tokens = ref_normalize_answer(prediction).split()
    ground_truth_tokens = ref_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def ref_exact_match_score(prediction, ground_truth):
    return ref_normalize_answer(prediction) == ref_normalize_answer(ground_truth)


def ref_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# -------------------------------------------------------------------------------------------------

CASES = [
    ("Denver Broncos", ["Denver Broncos", "The Denver Broncos"]),
    ("the Denver Broncos!", ["Denver Broncos"]),
    ("An apple a day", ["apple day"]),
    ("Broncos", ["Denver Broncos", "Carolina Panthers"]),
    ("Carolina  Panthers   and Denver", ["Denver Broncos", "Carolina Panthers"]),
    ("", ["Santa Clara, California"]),
    (
        "Levi's Stadium",
        ["Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."],
    ),
    ("1,000 people", ["1000 people", "one thousand"]),
    ("the the the", ["the"]),  # normalises to empty on both sides: EM 1, F1 0 (no common token)
    ("Theory of the Atom", ["atom theory", "the theory of atoms"]),
    ("É Café, naïve", ["é café naïve"]),
    ("New\tYork\nCity", ["new york city"]),
    ("50 50 50 percent", ["50 percent"]),
    ("anthem", ["an them"]),  # "an" inside a word is not an article
]


@pytest.mark.parametrize(("prediction", "golds"), CASES)
def test_em_f1_match_official_squad_script(prediction, golds):
    assert normalize_answer(prediction) == ref_normalize_answer(prediction)
    assert exact_match(prediction, golds) == float(
        ref_metric_max_over_ground_truths(ref_exact_match_score, prediction, golds)
    )
    assert f1_score(prediction, golds) == pytest.approx(
        ref_metric_max_over_ground_truths(ref_f1_score, prediction, golds), abs=1e-12
    )


def test_known_values():
    assert normalize_answer("  The Quick, brown FOX!  ") == "quick brown fox"
    assert exact_match("the Denver Broncos!", "Denver Broncos") == 1.0
    # pred {denver, broncos, won}, gold {denver, broncos}: P 2/3, R 1 -> F1 0.8
    assert f1_score("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    # a single string gold works like a one-element list; max over golds picks the best
    assert f1_score("Broncos", ["Panthers", "Denver Broncos"]) == pytest.approx(2 / 3)


def test_squad_scores_are_percent_means():
    preds = [c[0] for c in CASES]
    golds = [c[1] for c in CASES]
    out = squad_scores(preds, golds)
    ref_em = (
        100.0
        * sum(ref_metric_max_over_ground_truths(ref_exact_match_score, p, g) for p, g in CASES)
        / len(CASES)
    )
    ref_f1 = (
        100.0
        * sum(ref_metric_max_over_ground_truths(ref_f1_score, p, g) for p, g in CASES)
        / len(CASES)
    )
    assert out["exact_match"] == pytest.approx(ref_em)
    assert out["f1"] == pytest.approx(ref_f1)


def test_no_gold_answers_is_an_error():
    with pytest.raises(LmforgeError, match="gold"):
        exact_match("x", [])
    with pytest.raises(LmforgeError, match="pair up"):
        squad_scores(["a"], [])


HYPS = [
    "The cat sat on the mat.",
    "A quick brown dog jumps over the lazy fox",
    "Python is a programming language that lets you work quickly.",
]
REFS = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumps over the lazy dog",
    "Python is a programming language that lets you work quickly and integrate systems.",
]
REFS2 = [
    "There is a cat on the mat.",
    "A fast brown fox leaps over a lazy dog",
    "Python lets you work quickly.",
]


def test_bleu_and_chrf_equal_sacrebleu():
    import sacrebleu

    assert bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert chrf(HYPS, REFS) == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    # multiple references per hypothesis, given per sentence, become sacrebleu's streams
    multi = [[a, b] for a, b in zip(REFS, REFS2, strict=True)]
    assert bleu(HYPS, multi) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS, REFS2]).score)
    assert chrf(HYPS, multi, word_order=2) == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS, REFS2], word_order=2).score
    )
    assert 0.0 < bleu(HYPS, REFS) < 100.0
    assert bleu(REFS, REFS) == pytest.approx(100.0)


def test_bleu_reference_count_must_match():
    with pytest.raises(LmforgeError, match="pair up"):
        bleu(HYPS, REFS[:2])
    with pytest.raises(LmforgeError, match="same number"):
        bleu(HYPS[:2], [["a", "b"], ["c"]])


def test_rouge_equals_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    pred = "The cats were sitting on the mat.\nThey looked happy."
    ref = "A cat sat on the mat.\nThe cat was happy and looked content."
    expected = {k: v.fmeasure for k, v in scorer.score(ref, pred).items()}
    got = rouge(pred, ref)
    assert got == pytest.approx(expected)
    # Lsum splits on newlines, so it differs from L on multi-sentence text
    assert got["rougeLsum"] != pytest.approx(got["rougeL"])
    means = corpus_rouge(HYPS, REFS)
    for name in means:
        manual = sum(scorer.score(r, h)[name].fmeasure for h, r in zip(HYPS, REFS, strict=True))
        assert means[name] == pytest.approx(manual / len(HYPS))
