"""Declarative evaluation tasks: a TOML (or JSON) file says where the data is and how a record
becomes a prompt, choices and gold answers; the runner does the rest.

A multiple-choice task (the built-in ``openbookqa.toml``)::

    name = "openbookqa"
    type = "multiple_choice"
    data = "openbookqa/openbookqa.jsonl"        # relative to the task file or the data dir
    context = "{{ question.stem }}"             # Jinja2 template over the record's fields
    choices = "question.choices | map(attribute='text') | list"   # Jinja2 expression -> list
    gold = "['A', 'B', 'C', 'D'].index(answerKey)"                # expression -> index or list

Templates see the record's fields by name and the whole record as ``doc`` (for keys such as CSV
columns with spaces: ``doc['Best Answer']``), plus ``preamble`` (a fixed prompt prefix given in
the file). Extra filters: ``regex_replace(pattern, repl)`` and ``regex_findall(pattern)``.

Keys by task type (``*`` = required):

- all: ``name``*, ``type``*, ``data``*, ``format`` (jsonl | json | csv | squad; default from
  the extension), ``records`` (for json: key of the list), ``description``, ``id`` (template),
  ``category`` (template; per-category results), ``preamble``, ``metrics``
- multiple_choice: ``context``*, ``choices``*, ``gold``*, ``target_delimiter`` (" ")
- generation: ``context``*, ``gold``* (template or expression -> str or list), ``[fewshot]``
  (``data``, ``n``, ``example``, ``separator``, ``seed``), ``[generation]``
  (``max_new_tokens``, ``stop``), ``[answer]`` (``extract``: last_number | regex | text,
  ``regex``, ``compare``: number | exact_match | squad)
- rag: ``question``*, ``answers``, ``sources``, ``unanswerable`` (expressions), ``[rag]``
  (``documents``, ``holdout_articles``, ``k``, ``style``: sentence | short, ``answerer``:
  generate | extractive, ``min_relevance``)

Every mistake (unknown key, missing key, template error, unreadable data) raises LmforgeError
naming the task file.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import tomllib

from lmforge.errors import LmforgeError

BUILTIN_DIR = Path(__file__).resolve().parent / "tasks"
TASK_TYPES = ("multiple_choice", "generation", "rag")

_COMMON_KEYS = {
    "name", "type", "data", "format", "records", "description", "id", "category",
    "preamble", "metrics", "primary_metric",
}  # fmt: skip
_TYPE_KEYS = {
    "multiple_choice": {"context", "choices", "gold", "target_delimiter"},
    "generation": {"context", "gold", "fewshot", "generation", "answer", "chat"},
    "rag": {"question", "answers", "sources", "unanswerable", "rag"},
}
_REQUIRED = {
    "multiple_choice": {"context", "choices", "gold"},
    "generation": {"context", "gold"},
    "rag": {"question"},
}
_SECTION_KEYS = {
    "fewshot": {"data", "format", "n", "example", "separator", "seed", "records"},
    "generation": {"max_new_tokens", "stop"},
    "answer": {"extract", "regex", "compare"},
    "rag": {"documents", "holdout_articles", "k", "style", "answerer", "min_relevance"},
}


def data_dir() -> Path:
    """Where relative data paths of task files point: $LMFORGE_DATA_DIR or <repo>/../shared/data."""
    env = os.environ.get("LMFORGE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


# -- templates --------------------------------------------------------------------------------
def _environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["regex_replace"] = lambda s, pattern, repl="": re.sub(pattern, repl, str(s))
    env.filters["regex_findall"] = lambda s, pattern: re.findall(pattern, str(s))
    return env


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


@dataclass
class _Compiled:
    """A template (renders to str) or an expression (evaluates to any value) from a task file."""

    source: str
    key: str
    task_path: str
    expression: bool

    @cached_property
    def _fn(self):
        from jinja2 import TemplateSyntaxError

        try:
            if self.expression:
                return _env().compile_expression(self.source, undefined_to_none=False)
            return _env().from_string(self.source).render
        except TemplateSyntaxError as exc:
            raise LmforgeError(
                f"{self.task_path}: bad {self.key!r} {'expression' if self.expression else 'template'}"
                f" {self.source!r}: {exc.message}"
            ) from None

    def __call__(self, variables: dict[str, Any], where: str) -> Any:
        self._fn  # noqa: B018 - compile (and report syntax errors) before rendering
        try:
            return self._fn(**variables)
        except LmforgeError:
            raise
        except Exception as exc:  # jinja2 UndefinedError, TypeError, IndexError, ValueError...
            raise LmforgeError(
                f"{self.task_path}: {self.key!r} failed on {where}: {type(exc).__name__}: {exc}"
            ) from None


def _variables(record: dict[str, Any], preamble: str) -> dict[str, Any]:
    variables = {k: v for k, v in record.items() if isinstance(k, str) and k.isidentifier()}
    variables["doc"] = record
    variables["preamble"] = preamble
    return variables


# -- examples ---------------------------------------------------------------------------------
@dataclass
class MCExample:
    id: str
    category: str
    context: str
    choices: list[str]  # as shown to the model, without the delimiter
    gold: list[int]  # indices of the correct choices (MC2 has several)
    delimiter: str = " "


@dataclass
class GenExample:
    id: str
    category: str
    prompt: str  # few-shot examples + this question
    golds: list[str]
    question: str = ""


@dataclass
class RagExample:
    id: str
    category: str
    question: str
    answers: list[str]
    sources: list[str]
    unanswerable: bool = False


# -- the task ---------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    type: str
    path: Path  # the task file
    spec: dict[str, Any] = field(repr=False)

    # .. data ......................................................................................
    def resolve(self, relative: str) -> Path:
        """A data path from the task file: absolute, next to the task file, or in the data dir."""
        p = Path(relative).expanduser()
        if p.is_absolute():
            return p
        beside = self.path.parent / p
        if beside.exists():
            return beside
        return data_dir() / p

    def _records(self, data: str, fmt: str | None, records_key: str | None) -> list[dict]:
        return read_records(self.resolve(data), fmt, records_key, task_path=str(self.path))

    @cached_property
    def records(self) -> list[dict]:
        return self._records(self.spec["data"], self.spec.get("format"), self.spec.get("records"))

    # .. templates ...............................................................................
    def _compiled(self, key: str, expression: bool, section: str | None = None) -> _Compiled:
        """The compiled template/expression for a key, compiled once per task."""
        label = f"{section}.{key}" if section else key
        cache = self.__dict__.setdefault("_compiled_cache", {})
        if (label, expression) not in cache:
            table = self.spec.get(section, {}) if section else self.spec
            cache[label, expression] = _Compiled(str(table[key]), label, str(self.path), expression)
        return cache[label, expression]

    def _meta(self, record: dict, index: int, variables: dict) -> tuple[str, str]:
        where = f"record {index}"
        ex_id = (
            str(self._compiled("id", False)(variables, where)) if "id" in self.spec else str(index)
        )
        category = (
            str(self._compiled("category", False)(variables, where)).strip()
            if "category" in self.spec
            else ""
        )
        return ex_id, category

    @property
    def preamble(self) -> str:
        return str(self.spec.get("preamble", ""))

    @property
    def metrics(self) -> list[str]:
        return list(self.spec.get("metrics", []))

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.spec.get(name, {}))

    def examples(self, limit: int | None = None) -> list:
        """The task's examples in file order (the first ``limit`` of them)."""
        records = self.records if limit is None else self.records[:limit]
        build = {
            "multiple_choice": self._mc_example,
            "generation": self._gen_example,
            "rag": self._rag_example,
        }[self.type]
        if self.type == "generation":
            self._fewshot_prefix  # noqa: B018 - build once, report errors before the loop
        return [build(r, i) for i, r in enumerate(records)]

    def _mc_example(self, record: dict, index: int) -> MCExample:
        v = _variables(record, self.preamble)
        where = f"record {index} of {self.spec['data']}"
        context = str(self._compiled("context", False)(v, where))
        choices = self._compiled("choices", True)(v, where)
        if isinstance(choices, str) or not isinstance(choices, (list, tuple)) or not choices:
            raise LmforgeError(
                f"{self.path}: 'choices' must give a non-empty list on {where}, got {choices!r}"
            )
        choices = [str(c) for c in choices]
        gold = self._compiled("gold", True)(v, where)
        golds = list(gold) if isinstance(gold, (list, tuple, range)) else [gold]
        if not golds or not all(isinstance(g, int) and 0 <= g < len(choices) for g in golds):
            raise LmforgeError(
                f"{self.path}: 'gold' must give choice indices (0..{len(choices) - 1}) on {where},"
                f" got {gold!r}"
            )
        ex_id, category = self._meta(record, index, v)
        delimiter = str(self.spec.get("target_delimiter", " "))
        return MCExample(ex_id, category, context, choices, golds, delimiter)

    @cached_property
    def _fewshot_prefix(self) -> str:
        fs = self.section("fewshot")
        n = int(fs.get("n", 0))
        if n <= 0:
            return ""
        if "example" not in fs:
            raise LmforgeError(f"{self.path}: [fewshot] needs an 'example' template")
        pool = (
            self._records(fs["data"], fs.get("format"), fs.get("records"))
            if "data" in fs
            else self.records
        )
        if len(pool) < n:
            raise LmforgeError(f"{self.path}: [fewshot] wants {n} examples, data has {len(pool)}")
        rng = random.Random(int(fs.get("seed", 1234)))
        shots = rng.sample(range(len(pool)), n)
        template = self._compiled("example", False, "fewshot")
        separator = str(fs.get("separator", "\n\n"))
        parts = [
            template(_variables(pool[i], self.preamble), f"few-shot record {i}") for i in shots
        ]
        return separator.join(parts) + separator

    def _gen_example(self, record: dict, index: int) -> GenExample:
        v = _variables(record, self.preamble)
        where = f"record {index} of {self.spec['data']}"
        question = str(self._compiled("context", False)(v, where))
        gold = self._eval_either("gold", v, where)
        golds = [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]
        ex_id, category = self._meta(record, index, v)
        return GenExample(ex_id, category, self._fewshot_prefix + question, golds, question)

    def _rag_example(self, record: dict, index: int) -> RagExample:
        v = _variables(record, self.preamble)
        where = f"record {index} of {self.spec['data']}"
        question = str(self._compiled("question", False)(v, where))

        def as_list(key: str) -> list[str]:
            if key not in self.spec:
                return []
            value = self._compiled(key, True)(v, where)
            if value is None:
                return []
            return [str(x) for x in value] if isinstance(value, (list, tuple)) else [str(value)]

        unanswerable = (
            bool(self._compiled("unanswerable", True)(v, where))
            if "unanswerable" in self.spec
            else False
        )
        ex_id, category = self._meta(record, index, v)
        return RagExample(
            ex_id, category, question, as_list("answers"), as_list("sources"), unanswerable
        )

    def _eval_either(self, key: str, v: dict, where: str) -> Any:
        """``gold`` of a generation task: a template if it contains {{ }}, else an expression."""
        source = str(self.spec[key])
        return self._compiled(key, "{{" not in source and "{%" not in source)(v, where)


# -- reading task files and data --------------------------------------------------------------
def list_tasks() -> dict[str, Path]:
    """Built-in task names -> their files."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))} | {
        p.stem: p for p in sorted(BUILTIN_DIR.glob("*.json"))
    }


def load_task(name_or_path: str | Path) -> Task:
    """A built-in task by name, or a task file (.toml / .json) by path."""
    builtin = list_tasks()
    text_name = str(name_or_path)
    if text_name in builtin:
        path = builtin[text_name]
    else:
        path = Path(text_name).expanduser()
        if not path.is_file():
            if path.suffix in (".toml", ".json") or os.sep in text_name:
                raise LmforgeError(f"{text_name}: no such task file")
            raise LmforgeError(
                f"unknown task {text_name!r}: built-in tasks are {', '.join(builtin) or 'none'};"
                " or pass the path of a .toml/.json task file"
            )
    spec = _read_spec(path)
    _validate(spec, path)
    return Task(name=str(spec["name"]), type=str(spec["type"]), path=path, spec=spec)


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        if path.suffix == ".json":
            spec = json.loads(raw.decode("utf-8"))
        else:
            spec = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise LmforgeError(f"{path}: task file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise LmforgeError(f"{path}: malformed task file (TOML): {exc}") from None
    except json.JSONDecodeError as exc:
        raise LmforgeError(f"{path}: malformed task file (JSON): {exc}") from None
    except OSError as exc:
        raise LmforgeError(f"{path}: cannot read task file: {exc.strerror}") from None
    if not isinstance(spec, dict):
        raise LmforgeError(f"{path}: a task file must hold a table/object at the top level")
    return spec


def _validate(spec: dict[str, Any], path: Path) -> None:
    task_type = spec.get("type")
    if task_type not in TASK_TYPES:
        raise LmforgeError(
            f"{path}: 'type' must be one of {', '.join(TASK_TYPES)}, got {task_type!r}"
        )
    allowed = _COMMON_KEYS | _TYPE_KEYS[task_type]
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise LmforgeError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))} for a {task_type} task"
            f" (allowed: {', '.join(sorted(allowed))})"
        )
    missing = sorted(({"name", "data"} | _REQUIRED[task_type]) - set(spec))
    if missing:
        raise LmforgeError(f"{path}: missing required key(s) {', '.join(map(repr, missing))}")
    for section, keys in _SECTION_KEYS.items():
        if section in spec:
            if not isinstance(spec[section], dict):
                raise LmforgeError(f"{path}: [{section}] must be a table")
            bad = sorted(set(spec[section]) - keys)
            if bad:
                raise LmforgeError(
                    f"{path}: unknown key(s) {', '.join(map(repr, bad))} in [{section}]"
                    f" (allowed: {', '.join(sorted(keys))})"
                )
    for key in ("name", "data", "context", "choices", "gold", "question"):
        if key in spec and not isinstance(spec[key], str):
            raise LmforgeError(f"{path}: {key!r} must be a string")


def read_records(
    path: Path, fmt: str | None = None, records_key: str | None = None, task_path: str = ""
) -> list[dict]:
    """Records of a jsonl / json / csv / SQuAD-json data file, each a dict."""
    where = f"{task_path}: " if task_path else ""
    if not path.is_file():
        raise LmforgeError(f"{where}data file {path} not found")
    fmt = fmt or {".jsonl": "jsonl", ".json": "json", ".csv": "csv"}.get(path.suffix.lower())
    if fmt is None:
        raise LmforgeError(f"{where}cannot tell the format of {path}: set format = jsonl|json|csv")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LmforgeError(f"{where}{path} is not UTF-8 text") from None
    if fmt == "jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LmforgeError(f"{where}{path}:{n}: bad JSON line: {exc.msg}") from None
    elif fmt in ("json", "squad"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LmforgeError(f"{where}{path}: bad JSON: {exc}") from None
        if fmt == "squad":
            records = squad_records(data, path)
        else:
            if records_key:
                for part in records_key.split("."):
                    if not isinstance(data, dict) or part not in data:
                        raise LmforgeError(f"{where}{path}: no key {records_key!r}")
                    data = data[part]
            if not isinstance(data, list):
                raise LmforgeError(f"{where}{path}: expected a list of records (set 'records')")
            records = data
    elif fmt == "csv":
        records = list(csv.DictReader(text.splitlines()))
    else:
        raise LmforgeError(f"{where}unknown data format {fmt!r} (jsonl, json, csv, squad)")
    if not records:
        raise LmforgeError(f"{where}{path} holds no records")
    if not all(isinstance(r, dict) for r in records):
        raise LmforgeError(f"{where}{path}: every record must be an object")
    return records


def squad_source(title: str, paragraph_index: int) -> str:
    """The document name a SQuAD paragraph is indexed under: ``<title>/p<index>.txt``."""
    return f"{title}/p{paragraph_index:02d}.txt"


def squad_records(data: Any, path: Path) -> list[dict]:
    """One record per question of a SQuAD v1.1 file, with its paragraph as the gold source."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LmforgeError(f"{path}: not SQuAD JSON (no 'data' list)")
    records = []
    for article in data["data"]:
        title = str(article.get("title", "untitled"))
        for p_index, paragraph in enumerate(article.get("paragraphs", [])):
            for qa in paragraph.get("qas", []):
                answers = list(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                records.append(
                    {
                        "id": qa.get("id", str(len(records))),
                        "question": qa["question"],
                        "answers": answers,
                        "title": title,
                        "context": paragraph["context"],
                        "source": squad_source(title, p_index),
                    }
                )
    return records
