"""Time to val loss 1.88 on TinyShakespeare (characters): lmforge's recipe vs nanoGPT's CPU recipe.

    python benchmarks/shakespeare.py            # both, one after the other (about 5 minutes here)
    python benchmarks/shakespeare.py --ours     # only `lmforge train configs/shakespeare_char.toml`

Each side runs in a fresh process and is timed from process start (imports, data loading and
the final evaluation included) to the evaluation that reports its val loss:

- lmforge: `lmforge train configs/shakespeare_char.toml` as a user runs it; the time and loss
  are the trainer's own (metrics.jsonl: elapsed_s is measured from process start).
- nanoGPT's CPU recipe (its README: 4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0,
  AdamW lr 1e-3 with 100 warmup steps and cosine decay to 1e-4 over 2,000 iterations, beta2
  0.99, weight decay 0.1 on matrices, gradient clipping 1.0, fp32), run here on Hugging Face's
  `GPT2LMHeadModel` of that shape by this script's `--peer` mode. nanoGPT's model is the same
  GPT-2 block; it evaluates every 250 steps, the peer here only at the end (in its favour).

Both estimate val loss on 50 random batches of 12 x 64 characters from the last 10% of the text.
The issue's target: 1.88 or lower in half of nanoGPT's time.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
RECIPE = ROOT / "configs" / "shakespeare_char.toml"

# nanoGPT: config/train_shakespeare_char.py with its README's CPU overrides
PEER = dict(n_layer=4, n_head=4, n_embd=128, block=64, batch=12, iters=2000, warmup=100,
            lr=1e-3, min_lr=1e-4, beta2=0.99, weight_decay=0.1, grad_clip=1.0, eval_iters=50)  # fmt: skip


def run_peer() -> None:
    """nanoGPT's training loop on HF GPT2LMHeadModel; prints one JSON line when done."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    p = PEER
    torch.manual_seed(1337)
    text = TEXT.read_text(encoding="utf-8")
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    splits = {"train": data[:n], "val": data[n:]}

    def batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        d = splits[split]
        ix = torch.randint(len(d) - p["block"], (p["batch"],))
        x = torch.stack([d[i : i + p["block"]] for i in ix])
        y = torch.stack([d[i + 1 : i + 1 + p["block"]] for i in ix])
        return x, y

    cfg = GPT2Config(vocab_size=len(chars), n_positions=p["block"], n_embd=p["n_embd"],
                     n_layer=p["n_layer"], n_head=p["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0)  # fmt: skip
    model = GPT2LMHeadModel(cfg)
    params = [q for q in model.parameters() if q.requires_grad]
    groups = [
        {"params": [q for q in params if q.dim() >= 2], "weight_decay": p["weight_decay"]},
        {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=p["lr"], betas=(0.9, p["beta2"]))

    def lr_at(it: int) -> float:  # nanoGPT's get_lr
        if it < p["warmup"]:
            return p["lr"] * (it + 1) / (p["warmup"] + 1)
        ratio = (it - p["warmup"]) / (p["iters"] - p["warmup"])
        return p["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (p["lr"] - p["min_lr"])

    model.train()
    for it in range(p["iters"]):
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        x, y = batch("train")
        logits = model(input_ids=x).logits  # (HF's labels= would shift y a second time)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    losses = []
    with torch.no_grad():
        for _ in range(p["eval_iters"]):
            x, y = batch("val")
            logits = model(input_ids=x).logits
            losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))
    val = float(torch.stack(losses).mean())
    print(json.dumps({"val_loss": val, "end": time.time(), "steps": p["iters"]}), flush=True)


def time_ours(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "lmforge.cli", "train", str(RECIPE), "--out", out, *extra]
        subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    final = [m for m in metrics if "val_loss" in m][-1]
    return {"val_loss": final["val_loss"], "seconds": final["elapsed_s"], "steps": final["step"]}


def time_peer() -> dict:
    start = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--peer"], check=True, capture_output=True, text=True
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"val_loss": r["val_loss"], "seconds": r["end"] - start, "steps": r["steps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", action="store_true", help="run nanoGPT's recipe here (internal)")
    ap.add_argument("--ours", action="store_true", help="time only lmforge's recipe")
    ap.add_argument("--set", action="append", default=[], help="recipe override key=value")
    args = ap.parse_args()
    if args.peer:
        run_peer()
        return
    overrides = [arg for s in args.set for arg in ("--set", s)]
    rows = [("lmforge, configs/shakespeare_char.toml", time_ours(overrides))]
    if not args.ours:
        rows.append(("nanoGPT CPU recipe (HF GPT2LMHeadModel)", time_peer()))
    print("\n| run | steps | val loss | seconds from process start |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['steps']} | {r['val_loss']:.4f} | {r['seconds']:.1f} |")
    if len(rows) == 2:
        print(f"\nlmforge time / nanoGPT time: {rows[0][1]['seconds'] / rows[1][1]['seconds']:.2f}")


if __name__ == "__main__":
    main()
