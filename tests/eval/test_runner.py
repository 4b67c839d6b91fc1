"""Multiple-choice runner, generation answer extraction, reports and run comparison."""

from __future__ import annotations

import json
import math

import pytest

from lmforge.errors import LmforgeError
from lmforge.eval.compare import compare_runs, paired_bootstrap, render_table
from lmforge.eval.generation import last_number, normalize_number, score_generation
from lmforge.eval.multiple_choice import evaluate_multiple_choice, mc_scores
from lmforge.eval.report import write_run
from lmforge.eval.results import EvalResult
from lmforge.eval.scoring import ChoiceRequest, score_choices
from lmforge.eval.tasks import load_task

ROWS = [
    {"q": "The sky is", "opts": ["blue", "green", "a large cheese"], "gold": [0], "cat": "colour"},
    {"q": "Grass is", "opts": ["green", "purple"], "gold": [0], "cat": "colour"},
    {"q": "Two plus two is", "opts": ["four", "five", "4", "fish"], "gold": [0, 2], "cat": "maths"},
]


@pytest.fixture
def mc_task_file(tmp_path):
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    path = tmp_path / "t.toml"
    path.write_text(
        'name = "toy"\ntype = "multiple_choice"\ndata = "d.jsonl"\ncategory = "{{ cat }}"\n'
        'context = "Q: {{ q }}\\nA:"\nchoices = "opts"\ngold = "gold"\n'
        'metrics = ["acc", "acc_norm", "mc2"]\n'
    )
    return path


def test_mc_scores_definitions():
    # acc: argmax of raw log-likelihoods; acc_norm: argmax of loglik / len(choice in characters)
    logliks = [-4.0, -6.0, -3.9]
    choices = ["ab", "abcdef", "a"]  # normalised: -2.0, -1.0, -3.9 -> choice 1
    s = mc_scores(logliks, choices, gold=[1])
    assert s["acc"] == 0.0 and s["acc_norm"] == 1.0
    p = [math.exp(x) for x in logliks]
    assert s["mc2"] == pytest.approx(p[1] / sum(p))
    assert mc_scores(logliks, choices, gold=[0, 2])["acc"] == 1.0


def test_multiple_choice_runner(tiny_lm, mc_task_file, tmp_path):
    task = load_task(mc_task_file)
    result = evaluate_multiple_choice(tiny_lm, task, progress=False)
    assert result.n == 3 and set(result.metrics) == {"acc", "acc_norm", "mc2"}
    # recompute from the scorer directly
    logliks = score_choices(
        tiny_lm, [ChoiceRequest(f"Q: {r['q']}\nA:", [" " + o for o in r["opts"]]) for r in ROWS]
    )
    expected = [mc_scores(ll, r["opts"], r["gold"]) for ll, r in zip(logliks, ROWS, strict=True)]
    for m in ("acc", "acc_norm", "mc2"):
        assert result.metrics[m] == pytest.approx(sum(e[m] for e in expected) / 3)
    assert result.per_category["colour"]["n"] == 2 and result.per_category["maths"]["n"] == 1
    assert result.summary()["task"] == "toy"

    files = write_run(result, tmp_path / "run")
    for key in ("results", "report", "per_category"):
        assert files[key].is_file()
    assert files["per_category"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = files["report"].read_text()
    assert f"{result.metrics['acc_norm']:.4f}" in report and "maths" in report
    loaded = EvalResult.load(tmp_path / "run")
    assert loaded.metrics == result.metrics and len(loaded.examples) == 3


def test_answer_extraction():
    assert last_number("so 3 + 4 = 7 apples, total $1,234.") == "$1,234."
    assert normalize_number("$1,234.") == "1234"
    assert normalize_number("18.00") == "18" and normalize_number("-0.50") == "-0.5"
    assert last_number("no digits here") is None
    answer = {"extract": "last_number", "regex": r"#### (\-?[0-9\.\,]+)", "compare": "number"}
    s = score_generation("She makes 9 * 2 = 18 dollars.\n#### 18", ["18"], answer)["scores"]
    assert s == {"exact_match": 1.0, "strict_match": 1.0}
    s = score_generation("The answer is 18, not 20", ["18"], answer)["scores"]
    assert s == {"exact_match": 0.0, "strict_match": 0.0}
    s = score_generation("It is 18 eggs", ["18"], answer)["scores"]
    assert s == {"exact_match": 1.0, "strict_match": 0.0}
    with pytest.raises(LmforgeError, match="extract"):
        score_generation("x", ["1"], {"extract": "magic"})


def _result(scores: list[float], model: str, latencies=()) -> EvalResult:
    examples = [{"id": str(i), "category": "", "scores": {"acc": s}} for i, s in enumerate(scores)]
    return EvalResult(
        task="toy", type="multiple_choice", model=model, n=len(scores),
        metrics={"acc": sum(scores) / len(scores)}, primary_metric="acc", examples=examples,
        latencies_ms=list(latencies),
    )  # fmt: skip


def test_compare_bootstrap():
    a = _result([1.0] * 80 + [0.0] * 20, "A")
    b = _result([1.0] * 40 + [0.0] * 60, "B")
    (row,) = compare_runs(a, b)
    assert row.delta == pytest.approx(-0.4)
    assert row.low < -0.4 < row.high < 0 and row.verdict == "regression"
    (same,) = compare_runs(a, a)
    assert same.delta == 0 and same.verdict == "no significant change"
    assert "regression" in render_table([row])
    # the interval narrows as the sample grows
    lo1, hi1 = paired_bootstrap([0, 1] * 10, [1, 1] * 10)
    lo2, hi2 = paired_bootstrap([0, 1] * 500, [1, 1] * 500)
    assert hi2 - lo2 < hi1 - lo1
    with pytest.raises(LmforgeError, match="different tasks"):
        compare_runs(a, EvalResult(**{**b.to_dict(), "task": "other"}))


def test_latency_plot_and_report(tmp_path):
    result = _result([1.0, 0.0, 1.0], "A", latencies=[120.0, 80.0, 300.0])
    files = write_run(result, tmp_path / "r")
    assert files["latency"].read_bytes()[:4] == b"\x89PNG"
    assert "| 120.0 |" in files["report"].read_text()  # the p50


def test_load_bad_results(tmp_path):
    with pytest.raises(LmforgeError, match="no such results file"):
        EvalResult.load(tmp_path / "missing")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(LmforgeError, match=r"not a results\.json"):
        EvalResult.load(tmp_path)


def test_generation_skips_bad_items_and_keeps_the_rest(tiny_model_dir, tmp_path):
    from lmforge.eval.generation import evaluate_generation
    from lmforge.eval.lm import load_eval_model

    rows = [
        {"question": "what is 3 plus 4?", "answer": "#### 7"},
        {"question": "what is 3 plus 4? " * 200, "answer": "#### 7"},  # longer than the model
        {"question": "Two plus two?", "answer": "#### 4"},
    ]
    (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "g.toml").write_text(
        'name = "g"\ntype = "generation"\ndata = "g.jsonl"\n'
        'context = "Question: {{ question }}\\nAnswer:"\n'
        "gold = \"{{ answer.split('####')[-1] | trim }}\"\n"
        "[generation]\nmax_new_tokens = 4\n"
    )
    lm = load_eval_model(str(tiny_model_dir))
    result = evaluate_generation(lm, load_task(tmp_path / "g.toml"), batch_size=3, progress=False)
    assert [e["id"] for e in result.examples] == ["0", "2"]
    assert [s["id"] for s in result.skipped] == ["1"] and "tokens" in result.skipped[0]["reason"]
    assert result.n == 2 and "exact_match" in result.metrics
