"""Decoding speed of lmforge (fp32, bf16, int8, int4, fp16) next to HF transformers and llama.cpp.

    .venv/bin/python benchmarks/generate.py            # full run: ~200-token prompt, 128 new tokens
    .venv/bin/python benchmarks/generate.py --quick    # 16 new tokens, batch 8 skipped: checks it runs

For every mode: prefill tokens/s (one forward over the prompt and the first token), decode
tokens/s at batch 1 and at batch 8 (greedy, no early stop), on SmolLM2-135M. The peers run the
same GGUF file in the same process, one after the other: HF transformers (gguf_file=, fp32 and
bf16) and, if llama-cpp-python is installed (optional: it builds from source in ~15 minutes),
llama.cpp on the file's own Q4_1 weights (batch 1 only). lmforge and llama.cpp time the decode
from the first generated token on; HF's `generate` has no such hook, so its decode time is a
full run's minus a one-token run's. Ratios: decode vs HF fp32, prefill vs HF bf16 (the issue's
targets). Also checks that lmforge fp32 and HF fp32 pick the same greedy tokens, and lmforge
int4 and llama.cpp.

Run it alone on a quiet machine (two torch processes on two cores slow each other ~10x).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from lmforge.assets import DEFAULT_MODEL, resolve_model_path, resolve_precision
from lmforge.checkpoint import auto_quantization, load_model, read_gguf
from lmforge.checkpoint.gguf_quant import gguf_exact_layers
from lmforge.generate import Generator, SamplingParams
from lmforge.model.quantize import model_weight_bytes, quantize_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def gguf_path() -> Path:
    return resolve_model_path(DEFAULT_MODEL)


def prompt_text(tokenizer, n_tokens: int) -> list[int]:
    text = (DATA / "tinyshakespeare" / "input.txt").read_text()[:20000]
    return tokenizer.encode(text)[:n_tokens]


def timed(fn, repeats: int) -> float:
    """Median wall seconds of fn() over `repeats` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- lmforge ------------------------------------------------------------------------------------


def decode_rate(
    gen: Generator, prompts: list[list[int]], params: SamplingParams, repeats: int
) -> float:
    """Decode tok/s: the tokens after each row's first over the time after the first arrived,
    so the prefill (and its run-to-run noise) stays out. Median of `repeats` after a warm-up."""
    rates = []
    for i in range(repeats + 1):
        events = gen.stream_events(prompts, params)
        next(events)  # step 0's first token: the prefill is done
        start = time.perf_counter()
        rest = sum(1 for _ in events)  # step 0's other rows cost nothing more
        if i:
            rates.append((rest + 1 - len(prompts)) / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_lmforge(model, tok, prompt: list[int], new: int, batch8: bool, repeats: int) -> dict:
    gen = Generator(model, tok)
    params = SamplingParams(max_new_tokens=new, ignore_eos=True)
    one = SamplingParams(max_new_tokens=1, ignore_eos=True)
    prefill = timed(lambda: gen.generate(prompt, one), repeats)
    out = {"prefill": len(prompt) / prefill, "decode1": decode_rate(gen, [prompt], params, repeats)}
    if batch8:
        prompts = [prompt[i * 4 :] for i in range(8)]  # different lengths: left padding
        out["decode8"] = decode_rate(gen, prompts, params, 1)
    out["tokens"] = gen.generate(
        prompt, SamplingParams(max_new_tokens=min(new, 32), ignore_eos=True)
    ).token_ids
    gen.release_cache()
    return out


# -- HF transformers ----------------------------------------------------------------------------


def bench_hf(dtype: torch.dtype, prompt: list[int], new: int, batch8: bool, repeats: int) -> dict:
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=dtype
    ).eval()
    ids = torch.tensor([prompt])
    kw = dict(do_sample=False, pad_token_id=0)

    def run(x: torch.Tensor, n: int) -> torch.Tensor:
        with torch.inference_mode():
            mask = torch.ones_like(x)
            return model.generate(x, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, **kw)

    prefill = timed(lambda: run(ids, 1), repeats)
    total = timed(lambda: run(ids, new), repeats)
    out = {"prefill": len(prompt) / prefill, "decode1": (new - 1) / (total - prefill)}
    if batch8:
        x8 = ids.repeat(8, 1)
        p8 = timed(lambda: run(x8, 1), 1)
        t8 = timed(lambda: run(x8, new), 1)
        out["decode8"] = 8 * (new - 1) / (t8 - p8)
    out["tokens"] = run(ids, min(new, 32))[0, len(prompt) :].tolist()
    return out


# -- llama.cpp ----------------------------------------------------------------------------------


def bench_llama_cpp(prompt: list[int], new: int, repeats: int) -> dict:
    """llama.cpp through llama-cpp-python's low-level loop: eval the prompt, then one eval per
    greedy token (argmax of the last logits), so its Python costs no more than ours."""
    import llama_cpp
    import numpy as np

    threads = torch.get_num_threads()
    llm = llama_cpp.Llama(
        str(gguf_path()), n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip

    def last_logits() -> np.ndarray:  # the low-level API's view (eval keeps none of its own)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), (llm.n_vocab(),))

    def run(n: int) -> tuple[list[int], float]:
        """n greedy tokens and the seconds after the first (the decode's share)."""
        llm.reset()
        llm.eval(prompt)
        tokens = [int(np.argmax(last_logits()))]
        start = time.perf_counter()
        while len(tokens) < n:
            llm.eval(tokens[-1:])
            tokens.append(int(np.argmax(last_logits())))
        return tokens, time.perf_counter() - start

    prefill = timed(lambda: run(1), repeats)
    run(new)  # warm-up
    decode = statistics.median((new - 1) / run(new)[1] for _ in range(repeats))
    out = {"prefill": len(prompt) / prefill, "decode1": decode}
    out["tokens"] = run(min(new, 32))[0]
    llm.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 new tokens, no batch 8, 1 repeat")
    ap.add_argument("--no-hf", action="store_true", help="skip the HF transformers peer")
    ap.add_argument("--no-llama-cpp", action="store_true", help="skip llama.cpp if installed")
    ap.add_argument(
        "--modes", default="fp32,bf16,int8,int4,fp16,auto",
        help="auto = the default of load_chat_model / the CLI (see checkpoint.auto_quantization)",
    )  # fmt: skip
    ap.add_argument("--prompt-tokens", type=int, default=200)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    new = 16 if args.quick else args.new_tokens
    batch8 = not args.quick
    repeats = 1 if args.quick else 3

    base, tok = load_model(gguf_path(), precision="fp32")
    # the file's Q4_1 blocks, repacked as they are (what load_model(quantize="int4") uses)
    exact = gguf_exact_layers(base, read_gguf(gguf_path()))
    prompt = prompt_text(tok, args.prompt_tokens)
    print(f"SmolLM2-135M-Instruct, prompt {len(prompt)} tokens, {new} new tokens, "
          f"{torch.get_num_threads()} threads\n", file=sys.stderr)  # fmt: skip

    rows: dict[str, dict] = {}
    for mode in args.modes.split(","):
        if mode == "fp32":
            model = base
        elif mode == "bf16":
            model = copy.deepcopy(base).to(torch.bfloat16)
        elif mode in ("int8", "int4", "fp16"):
            model = quantize_model(copy.deepcopy(base), mode, exact=exact)
        elif mode == "auto":
            run_dtype = resolve_precision("auto")
            quant = auto_quantization(gguf_path())
            model = copy.deepcopy(base).to(run_dtype)
            if quant:
                quantize_model(model, quant, exact=exact, float_prefill=True)
            dt = "bf16" if run_dtype == torch.bfloat16 else "fp32"
            mode = f"auto ({dt} prefill, {quant or dt} decode)"
        else:
            raise SystemExit(f"unknown mode {mode}")
        print(f"lmforge {mode} ...", file=sys.stderr)
        rows[f"lmforge {mode}"] = bench_lmforge(model, tok, prompt, new, batch8, repeats)
        rows[f"lmforge {mode}"]["MB"] = model_weight_bytes(model) / 1e6
        if model is not base:
            del model
    if not args.no_hf:
        # HF in bf16 only next to our bf16 mode: without AMX it is emulated and takes many minutes.
        peers = [("fp32", torch.float32)] + (
            [("bf16", torch.bfloat16)] if "bf16" in args.modes.split(",") else []
        )
        for name, dtype in peers:
            print(f"HF transformers {name} ...", file=sys.stderr)
            rows[f"HF transformers {name}"] = bench_hf(dtype, prompt, new, batch8, repeats)
    if importlib.util.find_spec("llama_cpp") and not args.no_llama_cpp:
        print("llama.cpp (Q4_1) ...", file=sys.stderr)
        rows["llama.cpp Q4_1 (llama-cpp-python)"] = bench_llama_cpp(prompt, new, repeats)

    hf32, hf16 = rows.get("HF transformers fp32"), rows.get("HF transformers bf16")
    print("| engine | weights MB | prefill tok/s | decode tok/s (batch 1) | decode tok/s (batch 8) "
          "| decode vs HF fp32 | prefill vs HF bf16 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        mb = f"{r['MB']:.0f}" if "MB" in r else ""
        d8 = f"{r['decode8']:.1f}" if "decode8" in r else "-"
        vs_dec = f"{r['decode1'] / hf32['decode1']:.2f}x" if hf32 else "-"
        vs_pre = f"{r['prefill'] / hf16['prefill']:.2f}x" if hf16 else "-"
        print(
            f"| {name} | {mb} | {r['prefill']:.0f} | {r['decode1']:.1f} | {d8} | {vs_dec} | {vs_pre} |"
        )
    pairs = [
        ("lmforge fp32", "HF transformers fp32"),
        ("lmforge int4", "llama.cpp Q4_1 (llama-cpp-python)"),
    ]
    for ours, peer in pairs:
        if ours in rows and peer in rows:
            a, b = rows[ours]["tokens"], rows[peer]["tokens"]
            n = min(len(a), len(b))
            same = next((i for i in range(n) if a[i] != b[i]), n)
            print(f"\nGreedy tokens, {ours} vs {peer}: first {same} of {n} identical.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
