"""`lmforge eval ...`: run benchmark tasks, perplexity and RAG evaluations; compare runs.

    lmforge eval tasks                                   list the built-in tasks
    lmforge eval mc   --model M --task openbookqa [--limit N] [--json]
    lmforge eval gen  --model M --task gsm8k --limit 200
    lmforge eval ppl  --model M FILE [--context 1024 --stride 512] [--json]
    lmforge eval rag  --task xquad_en [--store S] [--limit N] [--judge overlap|model]
    lmforge eval run  TASK --model M                     any task, by its type
    lmforge eval compare RUN_A RUN_B                     regression table with bootstrap CIs

Every task run writes results.json, report.md and plots into --out (default
eval-runs/<task>-<time>).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lmforge.assets import DEFAULT_MODEL, precision_name
from lmforge.errors import LmforgeError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate models: benchmarks, perplexity, RAG; compare runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("tasks", help="list the built-in tasks")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)

    def task_options(p: argparse.ArgumentParser, task_required: bool = True) -> None:
        if task_required:
            p.add_argument("--task", required=True, help="built-in task name or task file path")
        p.add_argument(
            "--model", default=DEFAULT_MODEL, help="model name or path (default: %(default)s)"
        )
        p.add_argument("--limit", type=int, default=None, help="only the first N examples")
        p.add_argument(
            "--out", default=None, help="run directory (default: eval-runs/<task>-<time>)"
        )
        p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        p.add_argument(
            "--precision",
            "--dtype",
            dest="precision",
            default=None,
            help="fp32 | bf16 | fp16 (default: fp32; RAG: the chat model's auto choice)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--no-report", action="store_true", help="do not write files, just print")

    p = sub.add_parser("mc", help="multiple-choice task by log-likelihood (acc, acc_norm)")
    task_options(p)
    p.add_argument("--batch-tokens", type=int, default=2048, help="tokens per forward pass")
    p.set_defaults(func=cmd_mc)

    p = sub.add_parser("gen", help="generation task with answer extraction (e.g. gsm8k)")
    task_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together")
    p.add_argument("--max-new-tokens", type=int, default=None, help="override the task's limit")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("rag", help="RAG task: answers, retrieval, faithfulness, citations")
    task_options(p)
    p.add_argument(
        "--store",
        default=None,
        help="existing store to query (default: index the task's documents into a temporary store)",
    )
    p.add_argument("--k", type=int, default=None, help="passages retrieved per question")
    p.add_argument(
        "--judge",
        default="overlap",
        choices=["overlap", "model"],
        help="support judge (default: %(default)s)",
    )
    p.add_argument(
        "--answerer",
        default=None,
        choices=["generate", "extractive"],
        help="answer with the model (default) or extractively, without a model",
    )
    p.set_defaults(func=cmd_rag)

    p = sub.add_parser("run", help="run any task (dispatches on its type)")
    p.add_argument("task", help="built-in task name or task file path")
    task_options(p, task_required=False)
    p.set_defaults(
        func=cmd_run,
        batch_tokens=2048,
        batch_size=8,
        max_new_tokens=None,
        store=None,
        k=None,
        judge="overlap",
        answerer=None,
    )

    p = sub.add_parser("ppl", help="perplexity of a text file (sliding window)")
    p.add_argument("file", help="UTF-8 text file")
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help="model name or path (default: %(default)s)"
    )
    p.add_argument(
        "--context",
        type=int,
        default=None,
        help="window length in tokens (default: min(model max, 2048))",
    )
    p.add_argument(
        "--stride", type=int, default=None, help="new tokens per window (default: context/2)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument(
        "--precision", "--dtype", dest="precision", default="fp32",
        help="fp32 | bf16 | fp16 (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ppl)

    p = sub.add_parser("compare", help="compare two runs: regression table with bootstrap CIs")
    p.add_argument("a", help="baseline run directory or results.json")
    p.add_argument("b", help="candidate run directory or results.json")
    p.add_argument(
        "--samples", type=int, default=1000, help="bootstrap resamples (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON rows instead of Markdown")
    p.set_defaults(func=cmd_compare)


# -- commands ---------------------------------------------------------------------------------
def cmd_tasks(args: argparse.Namespace) -> int:
    from lmforge.eval.tasks import list_tasks, load_task

    rows = []
    for name, path in list_tasks().items():
        task = load_task(path)
        rows.append(
            {"name": name, "type": task.type, "description": task.spec.get("description", "")}
        )
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['name']:<16} {r['type']:<16} {r['description']}")
    return 0


def _load_task(spec: str, expected: str | None):
    from lmforge.eval.tasks import load_task

    task = load_task(spec)
    if expected and task.type != expected:
        raise LmforgeError(
            f"task {task.name!r} is a {task.type} task, not {expected} (try `lmforge eval run`)"
        )
    return task


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise LmforgeError(f"--limit must be >= 1, got {limit}")


def _out_dir(args: argparse.Namespace, task_name: str) -> Path:
    if not getattr(args, "_out", None):
        args._out = Path(args.out or f"eval-runs/{task_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return args._out


def _finish(result, args: argparse.Namespace) -> int:
    from lmforge.eval.report import write_run

    files = {}
    if not args.no_report:
        files = write_run(result, _out_dir(args, result.task))
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print(f"{result.task}: n={result.n}")
        for name, value in result.metrics.items():
            print(f"  {name:<22} {value:.4f}")
        if files:
            print(f"report: {files['report']}")
    if files:
        print(f"wrote {files['results'].parent}", file=sys.stderr)
    return 0


def _model(args: argparse.Namespace):
    from lmforge.eval.lm import load_eval_model

    return load_eval_model(args.model, precision=args.precision or "fp32")


def cmd_mc(args: argparse.Namespace) -> int:
    from lmforge.eval.multiple_choice import evaluate_multiple_choice

    _check_limit(args.limit)
    task = _load_task(args.task, "multiple_choice")
    task.examples(args.limit)  # read and check the data before spending time on the model
    lm = _model(args)
    result = evaluate_multiple_choice(
        lm, task, limit=args.limit, batch_tokens=args.batch_tokens, progress=not args.no_progress
    )
    return _finish(result, args)


def cmd_gen(args: argparse.Namespace) -> int:
    from lmforge.eval.generation import evaluate_generation

    _check_limit(args.limit)
    task = _load_task(args.task, "generation")
    task.examples(args.limit)
    lm = _model(args)
    result = evaluate_generation(
        lm,
        task,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        progress=not args.no_progress,
    )
    return _finish(result, args)


def cmd_rag(args: argparse.Namespace) -> int:
    from lmforge.eval.rag_eval import evaluate_rag

    _check_limit(args.limit)
    task = _load_task(args.task, "rag")
    task.examples(args.limit)
    result = evaluate_rag(
        task,
        model=args.model,
        store=args.store,
        work_dir=None if args.no_report else _out_dir(args, task.name) / "work",
        answerer=args.answerer,
        limit=args.limit,
        k=args.k,
        judge=args.judge,
        precision=precision_name(args.precision) if args.precision else "auto",
        progress=not args.no_progress,
    )
    return _finish(result, args)


def cmd_run(args: argparse.Namespace) -> int:
    task = _load_task(args.task, None)
    args.task = str(task.path)
    handler = {"multiple_choice": cmd_mc, "generation": cmd_gen, "rag": cmd_rag}[task.type]
    return handler(args)


def cmd_ppl(args: argparse.Namespace) -> int:
    from lmforge.eval.perplexity import perplexity, read_text

    text = read_text(args.file)  # check the file before loading the model
    lm = _model(args)
    res = perplexity(
        lm,
        text,
        context=args.context,
        stride=args.stride,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps({"file": str(args.file), **res.to_dict()}))
    else:
        print(f"{args.file}: perplexity {res.ppl:.3f} over {res.tokens} tokens")
        print(
            f"  per word {res.word_ppl:.3f}, per byte {res.byte_ppl:.4f}, bits/byte {res.bits_per_byte:.4f}"
        )
        print(f"  context {res.context}, stride {res.stride}, windows {res.windows}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lmforge.eval.compare import compare_runs, render_table
    from lmforge.eval.results import EvalResult

    a, b = EvalResult.load(args.a), EvalResult.load(args.b)
    rows = compare_runs(a, b, samples=args.samples, seed=args.seed)
    if args.json:
        print(json.dumps([{**r.__dict__, "verdict": r.verdict} for r in rows]))
    else:
        print(f"task {a.task}: A = {Path(args.a)} ({a.model}), B = {Path(args.b)} ({b.model})\n")
        print(render_table(rows))
    return 0
