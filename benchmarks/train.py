"""Training-step throughput: lmforge's Transformer vs Hugging Face transformers, side by side.

For each size and architecture the same model is built twice, as lmforge's `Transformer` and as
the HF class (`LlamaForCausalLM` for the Llama recipe: RoPE, SwiGLU, RMSNorm; `GPT2LMHeadModel`
for the GPT-2 recipe: learned positions, GELU, LayerNorm, biases), with identical weights
(exported through lmforge.checkpoint.save_pretrained and loaded with `from_pretrained`, and checked
to give equal logits). Both then run the same training step: forward under the same autocast
dtype, cross-entropy on the logits, backward, gradient clipping, fused AdamW step, on the same
batches. Rounds alternate between the two so drift on a shared host hits both alike; the table
reports the median step time as tokens/s and the ratio.

    python benchmarks/train.py            # full: three sizes, both architectures
    python benchmarks/train.py --quick    # smoke run: smallest size, few steps
    python benchmarks/train.py --dtype fp32 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from lmforge.assets import resolve_precision
from lmforge.checkpoint import save_pretrained
from lmforge.model import ModelConfig, Transformer

SIZES = {
    # name: (dim, layers, heads, block, batch, vocab)
    "char-0.8M": (128, 4, 4, 64, 12, 65),  # the shakespeare_char recipe
    "6L-384": (384, 6, 6, 256, 8, 1024),  # nanoGPT's Shakespeare GPU recipe size, BPE vocab
    "12L-768": (768, 12, 12, 256, 4, 8192),  # GPT-2 small shape, smaller vocab
}
ARCHS = {
    "llama": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, tie_embeddings=True),
    "gpt2": dict(norm="layernorm", mlp="gelu", pos="learned", bias=True, tie_embeddings=True),
}


def build_pair(size: str, arch: str) -> tuple[torch.nn.Module, torch.nn.Module, ModelConfig]:
    import transformers

    dim, layers, heads, block, _, vocab = SIZES[size]
    hidden = 4 * dim if arch == "gpt2" else 32 * ((int(8 * dim / 3) + 31) // 32)
    cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=layers, n_heads=heads, hidden_dim=hidden,
                      max_seq_len=block, **ARCHS[arch])  # fmt: skip
    torch.manual_seed(0)
    ours = Transformer(cfg)
    with tempfile.TemporaryDirectory() as d:
        save_pretrained(ours, None, d)
        theirs = transformers.AutoModelForCausalLM.from_pretrained(
            d, torch_dtype=torch.float32, attn_implementation="sdpa"
        )
    x = torch.randint(0, vocab, (2, block))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x).logits, atol=1e-4, rtol=1e-4)
    return ours.train(), theirs.train(), cfg


def make_step(model: torch.nn.Module, hf: bool, dtype: torch.dtype, compile: bool = False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model) if compile else model
    autocast = dtype != torch.float32

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autocast("cpu", dtype=dtype, enabled=autocast):
            logits = forward(x).logits if hf else forward(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def bench(
    size: str, arch: str, dtype: torch.dtype, steps: int, rounds: int, compiled: bool
) -> dict:
    ours, theirs, _ = build_pair(size, arch)
    _, _, _, block, batch, vocab = SIZES[size]
    g = torch.Generator().manual_seed(1)
    data = [torch.randint(0, vocab, (batch, block + 1), generator=g) for _ in range(steps)]
    data = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]
    runners = {"lmforge": make_step(ours, False, dtype), "hf": make_step(theirs, True, dtype)}
    if compiled:  # train.compile = true: the same model through torch.compile (a copy)
        import copy

        runners["lmforge+compile"] = make_step(copy.deepcopy(ours), False, dtype, compile=True)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up (allocator, oneDNN kernels, compilation)
        for d in data[:3]:
            run(*d)
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            for d in data:
                run(*d)
            times[name].append((time.perf_counter() - t0) / steps)
    tokens = batch * block
    ours_s, hf_s = statistics.median(times["lmforge"]), statistics.median(times["hf"])
    comp_s = statistics.median(times["lmforge+compile"]) if compiled else None
    return {
        "compiled": tokens / comp_s if comp_s else None, "ratio_compiled": hf_s / comp_s if comp_s else None,
        "size": size, "arch": arch, "params": f"{sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M",
        "batch": f"{batch}x{block}", "lmforge": tokens / ours_s, "hf": tokens / hf_s, "ratio": hf_s / ours_s,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest size, few steps (smoke run)")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 with AMX, else fp32) | fp32 | bf16")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: torch's choice)"
    )
    ap.add_argument("--sizes", nargs="*", default=None, choices=list(SIZES))
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--steps", type=int, default=None, help="steps per round (default 20)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = resolve_precision(args.dtype, device="cpu")
    sizes = args.sizes or (["char-0.8M"] if args.quick else list(SIZES))
    steps, rounds = (5, 2) if args.quick else (20, 5)
    steps, rounds = args.steps or steps, args.rounds or rounds
    print(f"# Training-step throughput, lmforge vs HF transformers {_hf_version()} "
          f"({str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads, torch {torch.__version__})\n")  # fmt: skip
    compiled = not args.no_compile
    print(
        "| size | arch | params | batch | lmforge tok/s | HF tok/s | lmforge / HF |"
        + (" lmforge compiled tok/s | compiled / HF |" if compiled else "")
    )
    print("|---|---|---|---|---:|---:|---:|" + ("---:|---:|" if compiled else ""))
    for size in sizes:
        for arch in ARCHS:
            r = bench(size, arch, dtype, steps, rounds, compiled)
            hf_name = "LlamaForCausalLM" if arch == "llama" else "GPT2LMHeadModel"
            print(f"| {r['size']} | {arch} ({hf_name}) | {r['params']} | {r['batch']} | "
                  f"{r['lmforge']:,.0f} | {r['hf']:,.0f} | {r['ratio']:.2f}x |"
                  + (f" {r['compiled']:,.0f} | {r['ratio_compiled']:.2f}x |" if compiled else ""), flush=True)  # fmt: skip


def _hf_version() -> str:
    import transformers

    return transformers.__version__


if __name__ == "__main__":
    main()
