"""`lmforge eval ...` end to end on a tiny model, and every bad-input path."""

from __future__ import annotations

import json

import pytest

from lmforge.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def toy_tasks(tmp_path):
    rows = [
        {"q": "The sky is", "opts": ["blue", "green"], "a": 0},
        {"q": "Grass is", "opts": ["blue", "green"], "a": 1},
        {"q": "Two plus two is", "opts": ["four", "five", "seven"], "a": 0},
    ]
    (tmp_path / "mc.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "mc.toml").write_text(
        'name = "toy_mc"\ntype = "multiple_choice"\ndata = "mc.jsonl"\n'
        'context = "{{ q }}"\nchoices = "opts"\ngold = "a"\n'
    )
    gen = [{"question": "what is 3 plus 4?", "answer": "#### 7"}] * 2
    (tmp_path / "gen.jsonl").write_text("\n".join(json.dumps(r) for r in gen))
    (tmp_path / "gen.toml").write_text(
        'name = "toy_gen"\ntype = "generation"\ndata = "gen.jsonl"\n'
        'context = "Question: {{ question }}\\nAnswer:"\n'
        "gold = \"{{ answer.split('####')[-1] | trim }}\"\n"
        'metrics = ["exact_match", "strict_match"]\n'
        '[fewshot]\nn = 1\nexample = "Question: {{ question }}\\nAnswer: {{ answer }}"\n'
        '[generation]\nmax_new_tokens = 8\nstop = ["Question:"]\n'
        '[answer]\nextract = "last_number"\nregex = "#### (\\\\d+)"\n'
    )
    return tmp_path


def test_mc_json_contract_and_compare(capsys, tiny_model_dir, toy_tasks, tmp_path):
    args = ["--model", str(tiny_model_dir), "--task", str(toy_tasks / "mc.toml"), "--no-progress"]
    code, out, _ = run(capsys, "mc", *args, "--json", "--out", str(tmp_path / "a"))
    assert code == 0
    summary = json.loads(out)
    assert set(summary) == {"task", "n", "acc", "acc_norm"}
    assert summary["task"] == "toy_mc" and summary["n"] == 3
    assert 0.0 <= summary["acc"] <= 1.0
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["metrics"]["acc"] == summary["acc"]
    assert (tmp_path / "a" / "report.md").is_file()

    code, out, _ = run(capsys, "mc", *args, "--limit", "2", "--json", "--out", str(tmp_path / "b"))
    assert code == 0 and json.loads(out)["n"] == 2
    code, out, _ = run(capsys, "compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 0 and "| acc | 2 |" in out and "95% CI" in out


def test_gen_and_run_dispatch(capsys, tiny_model_dir, toy_tasks, tmp_path):
    code, out, _ = run(
        capsys, "run", str(toy_tasks / "gen.toml"), "--model", str(tiny_model_dir),
        "--json", "--no-progress", "--out", str(tmp_path / "g"),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert summary["n"] == 2 and {"exact_match", "strict_match", "latency_p95_ms"} <= set(summary)
    saved = json.loads((tmp_path / "g" / "results.json").read_text())
    assert saved["examples"][0]["question"] == "Question: what is 3 plus 4?\nAnswer:"
    assert (tmp_path / "g" / "latency.png").is_file()


def test_ppl_json(capsys, tiny_model_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The sky is blue. Grass is green. " * 30)
    code, out, _ = run(
        capsys, "ppl", "--model", str(tiny_model_dir), str(text), "--context", "64",
        "--stride", "32", "--json", "--no-progress",
    )  # fmt: skip
    assert code == 0
    res = json.loads(out)
    assert res["ppl"] > 1.0 and res["tokens"] > 0
    assert res["bits_per_byte"] > 0 and res["word_ppl"] > res["ppl"]


def test_tasks_list(capsys):
    code, out, _ = run(capsys, "tasks", "--json")
    assert code == 0 and "openbookqa" in {t["name"] for t in json.loads(out)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mc", "--task", "no_such_task"], "unknown task 'no_such_task'"),
        (["mc", "--task", "{bad}/malformed.toml"], "malformed task file"),
        (
            ["mc", "--task", "openbookqa", "--model", "/no/such/model.gguf", "--limit", "1"],
            "/no/such/model.gguf",
        ),
        (["mc", "--task", "gsm8k"], "is a generation task"),
        (["mc", "--task", "openbookqa", "--limit", "0"], "--limit"),
        (["ppl", "{bad}/missing.txt"], "no such file"),
        (["ppl", "{bad}/binary.txt"], "not UTF-8"),
        (["ppl", "{bad}/empty.txt"], "empty document"),
        (["compare", "{bad}/nope", "{bad}/nope2"], "no such results file"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, tmp_path, argv, message):
    (tmp_path / "malformed.toml").write_text('name = "x"\ntype = [')
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "empty.txt").write_text("  \n")
    argv = [a.replace("{bad}", str(tmp_path)) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err
    assert err.startswith("lmforge: error:") and err.count("\n") == 1 and "Traceback" not in err
