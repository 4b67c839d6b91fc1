"""The training loop: one loop for every objective, with callbacks for everything else.

    trainer = Trainer(cfg, "runs/char", callbacks)   # lmforge.train.run.train: the defaults
    result = trainer.fit()

Per optimizer step: `grad_accum` micro-batches (the objective's loss under autocast, / grad_accum,
backward; DDP syncs gradients only on the last), unscale (fp16 GradScaler), clip, AdamW step,
scheduler step. What the loss is comes from the objective (`train.objective`, see
lmforge.train.objectives); logging, evaluation, samples, checkpoints and the exported model
come from the callbacks (lmforge.train.callbacks). The output directory holds:

    metrics.jsonl         one JSON object per logged step (step, train_loss and the objective's
                          metrics, lr, grad_norm, tokens_per_s, elapsed_s, mfu; val_* when evaluated)
    loss.png              train and validation curves
    checkpoint/state.pt   model, optimizer, scheduler, GradScaler, RNG states, step (= data
                          position: batches are a function of the step), the logged history;
                          written atomically
    config.json, model.safetensors, tokenizer...  the model via lmforge.checkpoint.save_pretrained
    train_config.toml     the resolved configuration
    samples.txt           the samples drawn at each evaluation

Resuming: a run started with an existing checkpoint continues from it and produces the same
losses as an uninterrupted run, bit for bit (same batches, same RNG streams, same optimizer state).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmforge.assets import resolve_precision
from lmforge.data.packing import Batcher, TokenStream
from lmforge.data.shards import read_meta
from lmforge.errors import LmforgeError
from lmforge.model import Transformer
from lmforge.train import distributed as D
from lmforge.train.config import TrainConfig, model_config, to_toml
from lmforge.train.data_setup import resolve_data
from lmforge.train.objectives import build_objective
from lmforge.train.optim import build_optimizer, build_scheduler

CHECKPOINT = "checkpoint/state.pt"


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


PROCESS_START = _process_start()


class Callback:
    """The hooks, each doing nothing: a callback overrides the ones it needs."""

    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_evaluate(self, trainer: Trainer, record: dict) -> None:
        pass

    def on_log(self, trainer: Trainer, record: dict) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    train_loss: float | None  # of the last logged step
    val_loss: float | None  # of the last evaluation (None without a validation split)
    elapsed_s: float
    metrics: list[dict]  # every logged record, as in metrics.jsonl


@dataclass
class StepOutput:
    metrics: dict[str, torch.Tensor]  # the objective's, averaged over micro-batches (this rank)
    lr: float  # the learning rate this step used
    grad_norm: torch.Tensor | None  # before clipping; None when clipping is off


class Trainer:
    def __init__(
        self, cfg: TrainConfig, out_dir: str | Path, callbacks: Sequence[Callback] = ()
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.out = Path(out_dir)
        self.objective = build_objective(cfg.train.objective)
        self.callbacks = list(callbacks)  # lmforge.train.run.train adds the default ones
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
        self.dtype = resolve_precision(t.dtype, device=dev)
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
        self._setup_data()
        self._setup_model()
        self.step = 0
        self.train_time = 0.0  # seconds spent in training steps (evaluation etc. excluded)
        self.history: list[dict] = []  # the logged records (metrics.jsonl), kept in checkpoints
        self._resume()

    def _setup_data(self) -> None:
        """Batches: rank 0 prepares raw text, then every rank reads the shards."""
        cfg, t, d = self.cfg, self.cfg.train, self.cfg.data
        self.data_dir, self.tokenizer = resolve_data(cfg, self.out, self.dist)
        self.meta = read_meta(self.data_dir)
        eos = self.meta.get("eos_id")
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

    def _setup_model(self) -> None:
        """Model (wrapped for DDP/FSDP), optimizer, schedule, GradScaler, compile."""
        cfg, t = self.cfg, self.cfg.train
        self.model_config = model_config(cfg, int(self.meta["vocab_size"]))
        torch.manual_seed(t.seed)  # identical initial weights on every rank
        self.raw_model = Transformer(self.model_config).to(self.device)
        torch.manual_seed(t.seed + self.dist.rank)
        self.model = D.wrap_model(self.raw_model, cfg.dist.strategy, self.dist, self.device)
        self.optimizer = build_optimizer(self.model, cfg.optim, self.device.type)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, t.max_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.forward = torch.compile(self.model) if t.compile else self.model

    # -- the run ----------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train from the current step to train.max_iters, calling the callbacks' hooks."""
        t, e = self.cfg.train, self.cfg.eval
        self.call("on_train_start")
        self.model.train()
        while self.step < t.max_iters:
            started = time.perf_counter()
            out = self.train_step()
            last = self.step == t.max_iters
            evaluate = last or (e.interval > 0 and self.step % e.interval == 0)
            logged = evaluate or self.step == 1 or self.step % max(1, t.log_interval) == 0
            record = self.record(out) if logged else None  # reducing it waits for the device
            self.train_time += time.perf_counter() - started
            if evaluate:
                self.call("on_evaluate", record)
            if record is not None:
                self.history.append(record)
                self.call("on_log", record)
            self.call("on_step_end")
        self.call("on_train_end")
        D.barrier(self.dist)
        return self.result()

    def train_step(self) -> StepOutput:
        """One optimizer step over `grad_accum` micro-batches of this step's global batch."""
        n = self.cfg.train.grad_accum
        sums: dict[str, torch.Tensor] = {}
        for micro in range(n):
            batch = self.train_batches.batch(self.step, self.dist.rank, self.dist.world, micro, n)
            with D.no_sync(self.model, self.dist, skip=micro < n - 1):
                with self.autocast():
                    loss, metrics = self.objective.loss(self.forward, batch.to(self.device))
                self.scaler.scale(loss / n).backward()
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v.detach() / n
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.grad_clip
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip) if clip > 0 else None
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepOutput(sums, lr, grad_norm)

    def record(self, out: StepOutput) -> dict:
        """A step's line of metrics.jsonl: the objective's metrics averaged over ranks, lr, norm."""
        if "loss" not in out.metrics:
            raise LmforgeError(f"objective {self.objective.name!r} returned no 'loss' metric")
        metrics = {k: float(D.all_reduce_mean(v, self.dist)) for k, v in out.metrics.items()}
        record = {"step": self.step, "train_loss": metrics.pop("loss"), **metrics, "lr": out.lr}
        if out.grad_norm is not None:
            record["grad_norm"] = round(float(out.grad_norm), 5)
        return record

    def result(self) -> TrainResult:
        def latest(key: str) -> float | None:
            return next((r[key] for r in reversed(self.history) if key in r), None)

        elapsed = time.time() - PROCESS_START
        return TrainResult(
            self.out, self.step, latest("train_loss"), latest("val_loss"), elapsed, self.history
        )

    # -- helpers for the objective and the callbacks ----------------------------------------------
    def call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def autocast(self) -> AbstractContextManager:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def log(self, msg: str) -> None:
        if self.dist.main:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """OUT/checkpoint/state.pt, everything resume needs (collective under FSDP)."""
        model_sd = D.full_model_state(self.model)
        optim_sd = D.full_optimizer_state(self.model, self.optimizer)
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
                "history": self.history,
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
        D.load_full_state(self.model, self.optimizer, state["model"], state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rng_file = path.with_name(f"rng_rank{self.dist.rank}.pt")
        if self.dist.enabled and rng_file.is_file():
            set_rng_state(torch.load(rng_file, weights_only=False), self.device)
        else:
            set_rng_state(state["rng"], self.device)
        self.log(f"resumed from {path} at step {self.step}")


def atomic_save(obj: object, path: Path) -> None:
    """torch.save to a temporary file, fsync, rename: a kill never leaves a torn checkpoint."""
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
