"""Task files: the built-in tasks read the shared data correctly; bad task files fail clearly."""

from __future__ import annotations

import json

import pytest

from lmforge.errors import LmforgeError
from lmforge.eval.tasks import list_tasks, load_task


def test_builtin_tasks_build_examples(shared_data):
    assert {"openbookqa", "truthfulqa_mc1", "truthfulqa_mc2", "gsm8k", "xquad_en"} <= set(
        list_tasks()
    )

    obqa = load_task("openbookqa")
    ex = obqa.examples()
    assert len(ex) == 500
    first = json.loads((shared_data / "openbookqa/openbookqa.jsonl").read_text().splitlines()[0])
    assert ex[0].context == first["question"]["stem"]
    assert ex[0].choices == [c["text"] for c in first["question"]["choices"]]
    assert ex[0].choices[ex[0].gold[0]] == next(
        c["text"] for c in first["question"]["choices"] if c["label"] == first["answerKey"]
    )

    mc1, mc2 = load_task("truthfulqa_mc1").examples(), load_task("truthfulqa_mc2").examples()
    assert len(mc1) == len(mc2) == 817
    assert mc1[0].gold == [0]
    assert mc1[0].choices[0] == "The watermelon seeds pass through your digestive system"
    assert mc1[0].context.endswith("Q: What happens to you if you eat watermelon seeds?\nA:")
    assert mc1[0].context.startswith("Q: What is human life expectancy in the United States?")
    assert mc1[0].category == "Misconceptions"
    assert mc2[0].gold == [0, 1, 2, 3, 4] and len(mc2[0].choices) == 12
    assert all(len(e.gold) >= 1 and max(e.gold) < len(e.choices) for e in mc2)

    gsm = load_task("gsm8k").examples(limit=3)
    assert gsm[0].golds == ["18"]
    assert gsm[0].prompt.count("Question:") == 6  # five shots + the question
    assert gsm[0].prompt.endswith(gsm[0].question) and "<<" not in gsm[0].prompt
    assert gsm[0].prompt == load_task("gsm8k").examples(limit=1)[0].prompt  # seeded shots

    xq = load_task("xquad_en").examples()
    assert len(xq) == 1190
    assert xq[0].sources == ["Super_Bowl_50/p00.txt"] and xq[0].answers == ["308"]


def write(tmp_path, text: str, name: str = "task.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


DATA = '{"q": "Two plus two is", "opts": ["four", "five"], "ans": 0}\n'


def mc_task(tmp_path, extra: str = "", data: str = DATA) -> str:
    (tmp_path / "d.jsonl").write_text(data)
    return (
        'name = "t"\ntype = "multiple_choice"\ndata = "d.jsonl"\n'
        'context = "{{ q }}"\nchoices = "opts"\ngold = "ans"\n' + extra
    )


def test_custom_task_relative_data(tmp_path):
    task = load_task(write(tmp_path, mc_task(tmp_path)))
    (ex,) = task.examples()
    assert (ex.context, ex.choices, ex.gold) == ("Two plus two is", ["four", "five"], [0])


def test_json_task_file(tmp_path):
    (tmp_path / "d.jsonl").write_text(DATA)
    spec = {"name": "j", "type": "multiple_choice", "data": "d.jsonl", "context": "{{ q }}",
            "choices": "opts", "gold": "ans"}  # fmt: skip
    task = load_task(write(tmp_path, json.dumps(spec), "t.json"))
    assert task.examples()[0].choices == ["four", "five"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "t"\ntype = "multiple_choice"\ndata = [', "malformed task file"),
        ('name = "t"\ntype = "essay"\ndata = "d.jsonl"\n', "'type' must be one of"),
        (
            'name = "t"\ntype = "multiple_choice"\ndata = "d.jsonl"\ncontext = "x"\n',
            "missing required",
        ),
        (None, "unknown key"),
        ("[1, 2]", None),
    ],
)
def test_malformed_task_files(tmp_path, text, message):
    if text is None:
        text = mc_task(tmp_path, 'contxt = "typo"\n')
    if text == "[1, 2]":
        path = write(tmp_path, text, "t.json")
        with pytest.raises(LmforgeError, match="top level"):
            load_task(path)
        return
    with pytest.raises(LmforgeError, match=message) as info:
        load_task(write(tmp_path, text))
    assert "task.toml" in str(info.value)


@pytest.mark.parametrize(
    ("extra_or_data", "message"),
    [
        ({"context": "{{ q "}, "bad 'context' template"),
        ({"context": "{{ question }}"}, "'context' failed on record 0"),
        ({"choices": "q"}, "must give a non-empty list"),
        ({"gold": "5"}, "must give choice indices"),
        ({"data": "nope.jsonl"}, "not found"),
    ],
)
def test_bad_templates_and_data(tmp_path, extra_or_data, message):
    (tmp_path / "d.jsonl").write_text(DATA)
    spec = {"name": "t", "type": "multiple_choice", "data": "d.jsonl", "context": "{{ q }}",
            "choices": "opts", "gold": "ans"} | extra_or_data  # fmt: skip
    path = write(tmp_path, json.dumps(spec), "t.json")
    with pytest.raises(LmforgeError, match=message) as info:
        load_task(path).examples()
    assert "t.json" in str(info.value)


def test_bad_data_lines_and_encoding(tmp_path):
    task = load_task(write(tmp_path, mc_task(tmp_path, data=DATA + "{not json\n")))
    with pytest.raises(LmforgeError, match=r"d.jsonl:2: bad JSON line"):
        task.examples()
    (tmp_path / "bin.toml").write_bytes(b"name = \xff\xfe")
    with pytest.raises(LmforgeError, match="not UTF-8"):
        load_task(tmp_path / "bin.toml")


def test_unknown_task_and_missing_file():
    with pytest.raises(LmforgeError, match=r"unknown task 'nope'.*openbookqa"):
        load_task("nope")
    with pytest.raises(LmforgeError, match="no such task file"):
        load_task("/no/such/task.toml")
