"""Generation tasks: few-shot prompt, greedy decoding through lmforge.generate, answer extraction.

GSM8K is the built-in example. Answer extraction follows lm-evaluation-harness's two filters:

- ``exact_match`` ("flexible-extract"): the last number in the generation;
- ``strict_match``: the number after ``#### `` (the answer format the few-shot examples teach).

Numbers compare after removing thousands separators, a dollar sign and a trailing full stop, and
numerically when both sides parse (so "18.00" matches "18"). ``compare = "exact_match"`` or
``"squad"`` score free text with the SQuAD normalisation instead (EM, or token F1).
"""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.eval.lm import EvalModel
from lmforge.eval.metrics import exact_match, f1_score
from lmforge.eval.results import EvalResult, latency_summary, mean, per_category
from lmforge.eval.tasks import GenExample, Task

_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")


def last_number(text: str) -> str | None:
    """The last number-like span in ``text`` (harness flexible-extract), or None."""
    matches = [m for m in _NUMBER.findall(text) if any(ch.isdigit() for ch in m)]
    return matches[-1] if matches else None


def regex_answer(text: str, pattern: str) -> str | None:
    match = re.search(pattern, text)
    if not match:
        return None
    return match.group(1) if match.groups() else match.group(0)


def normalize_number(text: str) -> str:
    text = text.strip().replace(",", "").replace("$", "")
    text = text.rstrip(".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(value.normalize())


def numbers_equal(pred: str | None, gold: str) -> bool:
    return pred is not None and normalize_number(pred) == normalize_number(gold)


def truncate_at_stop(text: str, stops: list[str]) -> str:
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def score_generation(text: str, golds: list[str], answer: dict[str, Any]) -> dict[str, Any]:
    """Scores and extracted answers of one generation, per the task's [answer] table."""
    compare = answer.get("compare", "number")
    extract = answer.get("extract", "last_number")
    regex = answer.get("regex")
    if extract == "last_number":
        pred = last_number(text)
    elif extract == "regex":
        if not regex:
            raise LmforgeError("[answer] extract = 'regex' needs a 'regex' pattern")
        pred = regex_answer(text, regex)
    elif extract == "text":
        pred = text.strip()
    else:
        raise LmforgeError(f"unknown [answer] extract {extract!r} (last_number, regex, text)")
    strict = regex_answer(text, regex) if regex else None

    if compare == "number":
        scores = {"exact_match": float(any(numbers_equal(pred, g) for g in golds))}
        if regex:
            scores["strict_match"] = float(any(numbers_equal(strict, g) for g in golds))
    elif compare == "exact_match":
        scores = {"exact_match": exact_match(pred or "", golds)}
    elif compare == "squad":
        scores = {"exact_match": exact_match(pred or "", golds), "f1": f1_score(pred or "", golds)}
    else:
        raise LmforgeError(f"unknown [answer] compare {compare!r} (number, exact_match, squad)")
    return {"scores": scores, "extracted": pred, "strict": strict}


def _generator(lm: EvalModel):
    from lmforge.generate import Generator, SamplingParams

    return Generator(lm.model, lm.tokenizer), SamplingParams


def evaluate_generation(
    lm: EvalModel,
    task: Task,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Generate greedily for every example and score the extracted answers."""
    started = time.perf_counter()
    examples: list[GenExample] = task.examples(limit)
    gen_cfg = task.section("generation")
    answer_cfg = task.section("answer")
    stops = [str(s) for s in gen_cfg.get("stop", [])]
    max_new = int(max_new_tokens or gen_cfg.get("max_new_tokens", 256))
    use_chat = bool(task.spec.get("chat", False))

    generator, SamplingParams = _generator(lm)
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new, stop=stops)

    prompts = [
        lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": ex.prompt}], add_generation_prompt=True
        )
        if use_chat
        else ex.prompt
        for ex in examples
    ]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(examples), desc=f"{task.name}", unit="q", dynamic_ncols=True)
    rows, latencies, skipped = [], [], []
    for start in range(0, len(examples), batch_size):
        chunk = list(range(start, min(start + batch_size, len(examples))))
        t0 = time.perf_counter()
        try:
            outputs = generator.generate_batch([prompts[i] for i in chunk], params)
        except LmforgeError:  # e.g. one prompt too long: retry one by one, skip the bad ones
            outputs = []
            for i in chunk:
                try:
                    outputs.append(generator.generate(prompts[i], params))
                except LmforgeError as exc:
                    outputs.append(None)
                    skipped.append({"id": examples[i].id, "reason": str(exc)})
        elapsed_ms = 1000 * (time.perf_counter() - t0)
        for i, out in zip(chunk, outputs, strict=True):
            if out is None:
                continue
            ex = examples[i]
            text = truncate_at_stop(out.text, stops)
            scored = score_generation(text, ex.golds, answer_cfg)
            latencies.append(elapsed_ms)
            rows.append(
                {
                    "id": ex.id,
                    "category": ex.category,
                    "scores": scored["scores"],
                    "question": ex.question,
                    "gold": ex.golds,
                    "generation": text,
                    "extracted": scored["extracted"],
                    "strict": scored["strict"],
                    "new_tokens": len(getattr(out, "token_ids", []) or []),
                    "finish_reason": getattr(out, "finish_reason", None),
                    "latency_ms": elapsed_ms,
                }
            )
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()

    metric_names = (
        [m for m in (task.metrics or ["exact_match"]) if m in rows[0]["scores"]] if rows else []
    )
    metrics = {m: mean([r["scores"][m] for r in rows]) for m in metric_names}
    metrics.update(latency_summary(latencies))
    return EvalResult(
        task=task.name,
        type=task.type,
        model=lm.name,
        n=len(rows),
        metrics=metrics,
        primary_metric=str(
            task.spec.get("primary_metric", metric_names[0] if metric_names else "")
        ),
        examples=rows,
        config={
            "limit": limit,
            "batch_size": batch_size,
            "max_new_tokens": max_new,
            "fewshot": int(task.section("fewshot").get("n", 0)),
            "decoding": "greedy",
            "dtype": str(lm.dtype),
        },
        per_category=per_category(rows, metric_names),
        latencies_ms=latencies,
        duration_s=time.perf_counter() - started,
        skipped=skipped,
    )
