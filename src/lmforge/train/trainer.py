"""The training core: one loop for pretraining on prepared token shards.

    from lmforge.train import load_config, train
    result = train(load_config("configs/shakespeare_char.toml"), "runs/shakespeare")

Per optimizer step: `grad_accum` micro-batches (forward under autocast, loss / grad_accum,
backward; DDP syncs gradients only on the last), unscale (fp16), clip, AdamW step, scheduler step.
Every `eval.interval` steps: validation loss and perplexity on fixed validation batches, and a
few sampled lines. The output directory holds:

    metrics.jsonl         one JSON object per logged step (step, train_loss, lr, tokens_per_s,
                          elapsed_s, mfu; val_loss and val_ppl when evaluated)
    loss.png              train and validation curves
    checkpoint/state.pt   model, optimizer, scheduler, GradScaler, RNG states, step (= data
                          position: batches are a function of the step), written atomically
    config.json, model.safetensors, tokenizer...  the model via lmforge.checkpoint.save_pretrained
    train_config.toml     the resolved configuration
    samples.txt           the samples drawn at each evaluation

Resuming: a run started with an existing checkpoint continues from it and produces the same
losses as an uninterrupted run (same batches, same RNG streams, same optimizer state).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.data.packing import Batcher, TokenStream
from lmforge.data.shards import read_meta
from lmforge.errors import LmforgeError
from lmforge.hardware import cpu_has_amx
from lmforge.train import distributed as D
from lmforge.train.config import TrainConfig, model_config
from lmforge.train.data_setup import resolve_data
from lmforge.train.optim import build_optimizer, build_scheduler


def _process_start() -> float:
    """Wall-clock time this process started (Linux /proc), so elapsed_s includes imports."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


_START = _process_start()
CHECKPOINT = "checkpoint/state.pt"


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    train_loss: float | None
    val_loss: float | None
    elapsed_s: float
    metrics: list[dict]


# --- precision -------------------------------------------------------------------------------


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_amx() else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}  # fmt: skip
    if name not in table:
        raise LmforgeError(f"train.dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return table[name]


def measure_peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 0.15) -> float:
    """Dense matmul rate of this device in `dtype` (FLOP/s): the MFU denominator.

    The best of five short trials, so a moment of contention does not lower the peak."""
    n = 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(5):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 5:
            a @ b
            reps += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


# --- checkpoints -----------------------------------------------------------------------------


def atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state(device: torch.device) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the loop --------------------------------------------------------------------------------


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        t = cfg.train
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        dev = t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if dev not in ("cpu", "cuda"):
            raise LmforgeError(f"train.device must be auto, cpu or cuda, got {t.device!r}")
        if dev == "cuda" and not torch.cuda.is_available():
            raise LmforgeError("train.device = 'cuda' but no CUDA device is available")
        self.dist = D.init_distributed(cfg.dist.backend, dev)
        self.device = (
            torch.device(dev, self.dist.local_rank) if dev == "cuda" else torch.device("cpu")
        )
        self.dtype = resolve_dtype(t.dtype, self.device)
        for name, v in (("train.max_iters", t.max_iters), ("train.batch_size", t.batch_size),
                        ("train.grad_accum", t.grad_accum), ("train.block_size", t.block_size)):  # fmt: skip
            if v <= 0:
                raise LmforgeError(f"{cfg.source}: {name} must be positive, got {v}")
        if t.batch_size % (t.grad_accum * self.dist.world):
            raise LmforgeError(
                f"{cfg.source}: train.batch_size={t.batch_size} must be divisible by "
                f"train.grad_accum={t.grad_accum} x world size {self.dist.world}"
            )
        torch.manual_seed(t.seed + self.dist.rank)
        np.random.seed(t.seed + self.dist.rank)
        random.seed(t.seed + self.dist.rank)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.toml").write_text(to_toml(cfg.to_dict()))

        # Data (rank 0 prepares raw text; everyone then reads the shards).
        self.data_dir, self.tokenizer = resolve_data(cfg, self.out, self.dist)
        self.meta = read_meta(self.data_dir)
        eos = self.meta.get("eos_id")
        d = cfg.data
        self.train_batches = Batcher(
            TokenStream(self.data_dir, "train", self.meta), t.block_size, t.batch_size,
            mode=d.sampling, order=d.order, seed=t.seed, doc_mask=d.doc_mask, eos_id=eos,
        )  # fmt: skip
        eval_bs = cfg.eval.batch_size or t.batch_size
        eval_bs = max(self.dist.world, eval_bs - eval_bs % self.dist.world)
        try:
            val_stream = TokenStream(self.data_dir, "val", self.meta)
        except LmforgeError:
            val_stream = None  # no validation split: training loss only
        self.val_batches = (
            Batcher(
                val_stream, t.block_size, eval_bs, seed=t.seed + 1, doc_mask=d.doc_mask, eos_id=eos
            )
            if val_stream is not None and val_stream.total > t.block_size + 1
            else None
        )

        # Model, optimizer, schedule, precision.
        self.model_config = model_config(cfg, int(self.meta["vocab_size"]))
        from lmforge.model import Transformer

        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.raw_model = Transformer(self.model_config).to(self.device)
        torch.manual_seed(t.seed + self.dist.rank)
        self.model = D.wrap_model(self.raw_model, cfg.dist.strategy, self.dist, self.device)
        self.optimizer = build_optimizer(self.model, cfg.optim, self.device.type)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, t.max_iters)
        self.use_autocast = self.dtype != torch.float32
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.forward = torch.compile(self.model) if t.compile else self.model
        self.step = 0
        self.metrics: list[dict] = []
        self._resume()

    # -- helpers ---------------------------------------------------------------------------------
    def autocast(self):
        if not self.use_autocast:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def loss_of(self, batch, model=None) -> tuple[torch.Tensor, torch.Tensor]:
        model = model or self.forward
        batch = batch.to(self.device)
        with self.autocast():
            logits = model(batch.x, positions=batch.positions, mask=batch.mask)
        ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.y.reshape(-1))
        return ce, self.raw_model.aux_loss

    @torch.no_grad()
    def evaluate(self) -> float | None:
        if self.val_batches is None:
            return None
        self.model.eval()
        losses = []
        for i in range(self.cfg.eval.iters):
            b = self.val_batches.batch(i, self.dist.rank, self.dist.world)
            losses.append(self.loss_of(b)[0])
        self.model.train()
        loss = D.all_reduce_mean(torch.stack(losses).mean(), self.dist)
        return float(loss)

    @torch.no_grad()
    def sample(self, n_tokens: int) -> str:
        """A few lines from the model (top-k sampling, its own generator: training RNG untouched)."""
        e = self.cfg.eval
        tok = self.tokenizer
        try:
            ids = tok.encode(e.sample_prompt) if e.sample_prompt else []
        except LmforgeError:
            ids = []
        if not ids:
            ids = [self.meta.get("eos_id") or 0]
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed)
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        model = self.model  # FSDP needs every rank in the forward; plain modules run anywhere
        model.eval()
        block = self.cfg.train.block_size
        for _ in range(n_tokens):
            with self.autocast():
                logits = model(x[:, -block:])[:, -1].float() / max(e.temperature, 1e-5)
            if e.top_k:
                v, _ = torch.topk(logits, min(e.top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)
            x = torch.cat([x, nxt], dim=1)
        model.train()
        return tok.decode(x[0, len(ids) :].tolist())

    # -- checkpoints -----------------------------------------------------------------------------
    def _state_dicts(self) -> tuple[dict, dict]:
        if self.dist.enabled and self.cfg.dist.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
                get_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return (
                get_model_state_dict(self.model, options=opts),
                get_optimizer_state_dict(self.model, self.optimizer, options=opts),
            )
        return self.raw_model.state_dict(), self.optimizer.state_dict()

    def save_checkpoint(self) -> None:
        model_sd, optim_sd = self._state_dicts()  # collective under FSDP: every rank calls it
        path = self.out / CHECKPOINT
        if self.dist.main:
            state = {
                "step": self.step,
                "model": model_sd,
                "optimizer": optim_sd,
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(self.device),
                "data": {
                    "step": self.step,
                    "seed": self.cfg.train.seed,
                    "sampling": self.cfg.data.sampling,
                },
                "model_config": self.model_config.to_dict(),
                "config": self.cfg.to_dict(),
            }
            atomic_save(state, path)
        if self.dist.enabled:  # every rank's own RNG streams
            D.barrier(self.dist)
            atomic_save(rng_state(self.device), path.with_name(f"rng_rank{self.dist.rank}.pt"))
            D.barrier(self.dist)

    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        if not self.cfg.train.resume or not path.is_file():
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a torn file cannot happen (atomic rename), a foreign one can
            raise LmforgeError(f"{path}: cannot read checkpoint ({exc})") from exc
        if state.get("model_config") != self.model_config.to_dict():
            raise LmforgeError(
                f"{path}: the checkpoint's model differs from this config; use another --out "
                "or --set train.resume=false"
            )
        if self.dist.enabled and self.cfg.dist.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            set_model_state_dict(self.model, state["model"], options=opts)
            set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=opts)
        else:
            self.raw_model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        rng_file = path.with_name(f"rng_rank{self.dist.rank}.pt")
        if self.dist.enabled and rng_file.is_file():
            set_rng_state(torch.load(rng_file, weights_only=False), self.device)
        else:
            set_rng_state(state["rng"], self.device)
        # metrics.jsonl: keep what was logged up to the checkpoint, drop what came after it.
        mpath = self.out / "metrics.jsonl"
        if mpath.is_file():
            kept = [json.loads(ln) for ln in mpath.read_text().splitlines() if ln.strip()]
            self.metrics = [m for m in kept if m["step"] <= self.step]
            if self.dist.main:
                mpath.write_text("".join(json.dumps(m) + "\n" for m in self.metrics))
        self.log(f"resumed from {path} at step {self.step}")

    # -- logging --------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.dist.main:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)

    def record(self, entry: dict) -> None:
        self.metrics.append(entry)
        if self.dist.main:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    # -- run --------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        n_params = self.raw_model.num_params()
        tokens_per_step = t.batch_size * t.block_size
        mc = self.model_config
        flops_per_token = 6 * n_params + 12 * mc.n_layers * mc.n_heads * mc.head_dim * t.block_size
        peak = t.peak_flops or measure_peak_flops(self.device, self.dtype)
        self.log(
            f"model {n_params / 1e6:.2f}M params | {self.dtype} on {self.device} | world {self.dist.world} | "
            f"{tokens_per_step} tokens/step | train tokens {self.train_batches.stream.total:,}"
        )
        bar = None
        if t.progress and self.dist.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.max_iters, initial=self.step, desc="train", unit="step",
                       dynamic_ncols=True, file=sys.stderr, mininterval=0.5)  # fmt: skip
        n_micro = t.grad_accum
        last_t, last_step = time.time(), self.step
        train_loss = val_loss = None
        self.model.train()
        while self.step < t.max_iters:
            step = self.step
            loss_sum = torch.zeros((), device=self.device)
            aux_sum = torch.zeros((), device=self.device)
            for micro in range(n_micro):
                batch = self.train_batches.batch(
                    step, self.dist.rank, self.dist.world, micro, n_micro
                )
                sync = micro == n_micro - 1
                ctx = (
                    self.model.no_sync()
                    if (self.dist.enabled and not sync and hasattr(self.model, "no_sync"))
                    else nullcontext()
                )
                with ctx:
                    ce, aux = self.loss_of(batch)
                    loss = (ce + aux) / n_micro
                    self.scaler.scale(loss).backward()
                loss_sum += ce.detach() / n_micro
                aux_sum += aux.detach() / n_micro
            self.scaler.unscale_(self.optimizer)
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                if cfg.optim.grad_clip > 0
                else None
            )
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1

            last = self.step == t.max_iters
            evaluate = last or (cfg.eval.interval and self.step % cfg.eval.interval == 0)
            logged = last or evaluate or self.step % max(1, t.log_interval) == 0 or self.step == 1
            if logged:
                train_loss = float(D.all_reduce_mean(loss_sum, self.dist))
                now = time.time()
                tps = (self.step - last_step) * tokens_per_step / max(now - last_t, 1e-9)
                last_t, last_step = now, self.step
                entry = {
                    "step": self.step,
                    "train_loss": train_loss,
                    "lr": lr,
                    "tokens_per_s": round(tps, 1),
                    "elapsed_s": round(now - _START, 3),
                    "mfu": round(tps * flops_per_token / peak, 4),
                }
                if grad_norm is not None:
                    entry["grad_norm"] = round(float(grad_norm), 5)
                if mc.n_experts:
                    entry["aux_loss"] = round(float(D.all_reduce_mean(aux_sum, self.dist)), 6)
                if evaluate:
                    val_loss = self.evaluate()
                    if val_loss is not None:
                        entry["val_loss"] = val_loss
                        entry["val_ppl"] = round(math.exp(min(val_loss, 50.0)), 4)
                    last_t = time.time()  # evaluation time is not training throughput
                self.record(entry)
                if bar is not None:
                    post = {
                        "loss": f"{train_loss:.4f}",
                        "tok/s": f"{tps:,.0f}",
                        "mfu": f"{entry['mfu']:.1%}",
                    }
                    if val_loss is not None:
                        post["val"] = f"{val_loss:.4f}"
                    bar.set_postfix(post, refresh=False)
                if evaluate and not last:
                    self._sample_and_log()
            if bar is not None:
                bar.update(1)
            ckpt_every = t.checkpoint_interval
            if not last and ckpt_every and self.step % ckpt_every == 0:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        self.save_checkpoint()
        self._sample_and_log()
        self.finish()
        return TrainResult(
            self.out, self.step, train_loss, val_loss, time.time() - _START, self.metrics
        )

    def _sample_and_log(self) -> None:
        n = self.cfg.eval.sample_tokens
        if not n:
            return
        text = self.sample(n)
        if self.dist.main:
            with open(self.out / "samples.txt", "a", encoding="utf-8") as f:
                f.write(f"--- step {self.step}\n{text}\n")
            self.log(f"--- sample at step {self.step}\n{text}")

    def finish(self) -> None:
        """Plot the curves and export the model in the native format (rank 0)."""
        model_sd = None
        if self.dist.enabled and self.cfg.dist.strategy == "fsdp":
            model_sd = self._state_dicts()[0]
        if self.dist.main:
            plot_losses(self.metrics, self.out / "loss.png")
            if self.cfg.train.save_pretrained:
                export_model(
                    self.raw_model, self.model_config, model_sd, self.tokenizer, self.out, self.log
                )
        D.barrier(self.dist)


def export_model(raw_model, model_config, state_dict, tokenizer, out: Path, log) -> None:
    from lmforge.model import Transformer

    try:
        from lmforge.checkpoint import save_pretrained
    except ImportError:
        log(
            "lmforge.checkpoint is not available: model export skipped (checkpoint/state.pt has the weights)"
        )
        return
    model = raw_model
    if state_dict is not None:  # FSDP: rebuild a plain module from the gathered full weights
        model = Transformer.from_state_dict(model_config, state_dict)
    was_training = model.training
    model.eval()
    save_pretrained(model, tokenizer, out)
    model.train(was_training)


def plot_losses(metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    tr = [(m["step"], m["train_loss"]) for m in metrics if "train_loss" in m]
    va = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    if tr:
        ax.plot(*zip(*tr, strict=True), label="train", lw=1.2)
    if va:
        ax.plot(*zip(*va, strict=True), "o-", label="val", lw=1.6, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def to_toml(d: dict) -> str:
    """A minimal TOML writer for the resolved config (flat tables of scalars and lists)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    lines = []
    for section, values in d.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def train(cfg: TrainConfig, out_dir: str | Path) -> TrainResult:
    """Run (or resume) a training run; under torchrun every rank calls this."""
    trainer = Trainer(cfg, out_dir)
    try:
        return trainer.fit()
    finally:
        D.cleanup(trainer.dist)
