"""Multiple-choice evaluation by log-likelihood (lm-evaluation-harness definitions).

For each question every choice is scored as ``log p(delimiter + choice | context)``:

- ``acc``: the highest-scoring choice is a gold one;
- ``acc_norm``: the same after dividing each score by the choice's length in characters
  (the harness normalises by the length of the choice text, without the delimiter);
- ``mc2`` (TruthfulQA): the probability mass on the gold choices, normalised over all choices:
  sum_{gold} p_i / sum_all p_i with p_i = exp(loglik_i).
"""

from __future__ import annotations

import math
import time

from lmforge.eval.lm import EvalModel
from lmforge.eval.results import EvalResult, mean, per_category
from lmforge.eval.scoring import ChoiceRequest, score_choices
from lmforge.eval.tasks import MCExample, Task


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def mc_scores(logliks: list[float], choices: list[str], gold: list[int]) -> dict[str, float]:
    """acc, acc_norm and mc2 of one question from its choices' log-likelihoods."""
    lengths = [max(len(c), 1) for c in choices]
    normed = [ll / n for ll, n in zip(logliks, lengths, strict=True)]
    top = max(logliks)
    total = sum(math.exp(ll - top) for ll in logliks)
    on_gold = sum(math.exp(logliks[i] - top) for i in gold)
    return {
        "acc": float(argmax(logliks) in gold),
        "acc_norm": float(argmax(normed) in gold),
        "mc2": on_gold / total,
    }


def evaluate_multiple_choice(
    lm: EvalModel,
    task: Task,
    *,
    limit: int | None = None,
    batch_tokens: int = 2048,
    progress: bool = True,
) -> EvalResult:
    """Score every question of a multiple-choice task; returns per-question and mean metrics."""
    started = time.perf_counter()
    examples: list[MCExample] = task.examples(limit)
    requests = [
        ChoiceRequest(ex.context, [ex.delimiter + c for c in ex.choices]) for ex in examples
    ]
    all_logliks = score_choices(lm, requests, batch_tokens=batch_tokens, progress=progress)

    metric_names = task.metrics or ["acc", "acc_norm"]
    rows = []
    for ex, logliks in zip(examples, all_logliks, strict=True):
        scores = mc_scores(logliks, ex.choices, ex.gold)
        rows.append(
            {
                "id": ex.id,
                "category": ex.category,
                "scores": {m: scores[m] for m in metric_names},
                "pred": argmax(logliks),
                "gold": ex.gold,
                "logliks": [round(x, 5) for x in logliks],
            }
        )
    metrics = {m: mean([r["scores"][m] for r in rows]) for m in metric_names}
    return EvalResult(
        task=task.name,
        type=task.type,
        model=lm.name,
        n=len(rows),
        metrics=metrics,
        primary_metric=str(task.spec.get("primary_metric", metric_names[0])),
        examples=rows,
        config={"limit": limit, "batch_tokens": batch_tokens, "dtype": str(lm.dtype)},
        per_category=per_category(rows, metric_names),
        duration_s=time.perf_counter() - started,
    )
