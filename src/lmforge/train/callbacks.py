"""Callbacks: everything a run does besides training, as small classes with hooks.

Each subclasses `lmforge.train.trainer.Callback`, the loop's hook interface. Trainer.fit calls
the hooks on every callback, in list order, on every rank:

    on_train_start(trainer)           after set-up and resume, before the first step
    on_evaluate(trainer, record)      on evaluation steps: add val_* fields to the step's record
    on_log(trainer, record)           on logged steps (evaluation steps included); the record is
                                      in trainer.history. Callbacks that add fields to it
                                      (Throughput) come before those that write it
    on_step_end(trainer)              after every optimizer step, last
    on_train_end(trainer)             after the last step

A record is the dict that becomes one line of metrics.jsonl: step, train_loss and the
objective's other metrics, lr, grad_norm, then what the callbacks add. Work that is collective
under DDP/FSDP (evaluation, checkpoints, gathering weights) runs on every rank; files and the
console are rank 0's (`trainer.dist.main`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

from lmforge.checkpoint import save_pretrained
from lmforge.errors import LmforgeError
from lmforge.model import Transformer
from lmforge.train import distributed as D
from lmforge.train.config import TrainConfig
from lmforge.train.trainer import PROCESS_START, Callback, Trainer


def default_callbacks(cfg: TrainConfig) -> list[Callback]:
    """What `lmforge train` runs with, in the order the hooks need."""
    t, e = cfg.train, cfg.eval
    callbacks: list[Callback] = [
        Throughput(t.peak_flops),
        Evaluation(e.iters),
        MetricsFile(),
        Console(t.progress),
        Checkpointing(t.checkpoint_interval),
    ]
    if e.sample_tokens:
        callbacks.append(Samples(e.sample_tokens, e.sample_prompt, e.temperature, e.top_k))
    callbacks.append(LossPlot())
    if t.save_pretrained:
        callbacks.append(ExportModel())
    return callbacks


# -- metrics ----------------------------------------------------------------------------------


class Throughput(Callback):
    """tokens_per_s, elapsed_s (since process start) and mfu on every record.

    Tokens per second count training steps only (trainer.train_time excludes evaluation,
    sampling and checkpoints). MFU = model FLOPs per token (6 x params + attention, PaLM's
    formula) x tokens/s over this device's dense matmul rate in the training dtype, measured at
    the start unless `peak_flops` gives it.
    """

    def __init__(self, peak_flops: float = 0.0) -> None:
        self.peak = peak_flops

    def on_train_start(self, trainer: Trainer) -> None:
        t, mc = trainer.cfg.train, trainer.model_config
        attention = 12 * mc.n_layers * mc.n_heads * mc.head_dim * t.block_size
        self.flops_per_token = 6 * trainer.raw_model.num_params() + attention
        self.tokens_per_step = t.batch_size * t.block_size
        self.peak = self.peak or measure_peak_flops(trainer.device, trainer.dtype)
        self.last_step, self.last_time = trainer.step, trainer.train_time

    def on_log(self, trainer: Trainer, record: dict) -> None:
        seconds = max(trainer.train_time - self.last_time, 1e-9)
        tps = (trainer.step - self.last_step) * self.tokens_per_step / seconds
        self.last_step, self.last_time = trainer.step, trainer.train_time
        record["tokens_per_s"] = round(tps, 1)
        record["elapsed_s"] = round(time.time() - PROCESS_START, 3)
        record["mfu"] = round(tps * self.flops_per_token / self.peak, 4)


def measure_peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 0.15) -> float:
    """Dense matmul rate of this device in `dtype` (FLOP/s): the MFU denominator.

    The best of five short trials, so a moment of contention does not lower the peak. The
    operands come from a private generator: the training RNG streams (and so resume) are
    untouched."""
    n = 512
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
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


class Evaluation(Callback):
    """Validation metrics on `iters` fixed validation batches: val_loss, val_ppl and val_<metric>.

    The same batches every time (a function of the batch index), averaged over ranks; nothing
    when the data has no validation split."""

    def __init__(self, iters: int) -> None:
        self.iters = iters

    @torch.no_grad()
    def on_evaluate(self, trainer: Trainer, record: dict) -> None:
        batches = trainer.val_batches
        if batches is None or self.iters <= 0:
            return
        sums: dict[str, torch.Tensor] = {}
        trainer.model.eval()
        for i in range(self.iters):
            batch = batches.batch(i, trainer.dist.rank, trainer.dist.world).to(trainer.device)
            with trainer.autocast():
                _, metrics = trainer.objective.loss(trainer.forward, batch)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v.float() / self.iters
        trainer.model.train()
        for k, v in sums.items():
            record[f"val_{k}"] = float(D.all_reduce_mean(v, trainer.dist))
        if trainer.objective.perplexity:
            record["val_ppl"] = round(math.exp(min(record["val_loss"], 50.0)), 4)


class MetricsFile(Callback):
    """OUT/metrics.jsonl: one JSON object per logged step.

    At the start the file is rewritten from trainer.history: a resumed run keeps the lines up to
    its checkpoint (and drops those logged after it), a fresh run starts an empty file."""

    def path(self, trainer: Trainer) -> Path:
        return trainer.out / "metrics.jsonl"

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.dist.main:
            lines = "".join(json.dumps(r) + "\n" for r in trainer.history)
            self.path(trainer).write_text(lines, encoding="utf-8")

    def on_log(self, trainer: Trainer, record: dict) -> None:
        if trainer.dist.main:
            with open(self.path(trainer), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


class Console(Callback):
    """A summary line at the start and a progress bar with loss, tokens/s and MFU (stderr)."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress
        self.bar = None
        self.val_loss: float | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        t = trainer.cfg.train
        trainer.log(
            f"model {trainer.raw_model.num_params() / 1e6:.2f}M params | {trainer.dtype} on "
            f"{trainer.device} | objective {trainer.objective.name} | world {trainer.dist.world}"
            f" | {t.batch_size * t.block_size} tokens/step | "
            f"train tokens {trainer.train_batches.stream.total:,}"
        )
        if self.progress and trainer.dist.main:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=t.max_iters, initial=trainer.step, desc="train", unit="step",
                            dynamic_ncols=True, file=sys.stderr, mininterval=0.5)  # fmt: skip

    def on_log(self, trainer: Trainer, record: dict) -> None:
        if self.bar is None:
            return
        self.val_loss = record.get("val_loss", self.val_loss)
        post = {"loss": f"{record['train_loss']:.4f}"}
        if "tokens_per_s" in record:
            post["tok/s"] = f"{record['tokens_per_s']:,.0f}"
            post["mfu"] = f"{record['mfu']:.1%}"
        if self.val_loss is not None:
            post["val"] = f"{self.val_loss:.4f}"
        self.bar.set_postfix(post, refresh=False)

    def on_step_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# -- model outputs ----------------------------------------------------------------------------


class Checkpointing(Callback):
    """OUT/checkpoint/state.pt every `interval` steps (0: only at the end) and at the end."""

    def __init__(self, interval: int = 0) -> None:
        self.interval = interval

    def on_step_end(self, trainer: Trainer) -> None:
        last = trainer.step == trainer.cfg.train.max_iters  # on_train_end saves that one
        if self.interval and not last and trainer.step % self.interval == 0:
            trainer.save_checkpoint()

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.save_checkpoint()


class Samples(Callback):
    """A few sampled tokens at each evaluation and at the end (OUT/samples.txt and stderr).

    Sampling goes through lmforge.generate's rules (temperature, then top-k; temperature 0 is
    greedy) with its own seeded generator, so the training RNG streams are untouched."""

    def __init__(self, n_tokens: int, prompt: str = "\n", temperature: float = 0.8,
                 top_k: int = 200) -> None:  # fmt: skip
        self.n_tokens, self.prompt = n_tokens, prompt
        self.temperature, self.top_k = temperature, top_k

    def on_train_start(self, trainer: Trainer) -> None:
        # generate is on train's floor, and never imports train: imported lazily, here only
        from lmforge.generate.sampling import SamplingParams

        try:
            self.params = SamplingParams(
                max_new_tokens=self.n_tokens,
                temperature=self.temperature,
                top_k=self.top_k or None,
            )
        except LmforgeError as exc:
            raise LmforgeError(f"{trainer.cfg.source}: [eval] sampling: {exc}") from None

    def on_evaluate(self, trainer: Trainer, record: dict) -> None:
        if trainer.step < trainer.cfg.train.max_iters:  # the last step's sample is on_train_end's
            self.write(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self.write(trainer)

    def write(self, trainer: Trainer) -> None:
        text = self.sample(trainer)
        if trainer.dist.main:
            with open(trainer.out / "samples.txt", "a", encoding="utf-8") as f:
                f.write(f"--- step {trainer.step}\n{text}\n")
            trainer.log(f"--- sample at step {trainer.step}\n{text}")

    @torch.no_grad()
    def sample(self, trainer: Trainer) -> str:
        from lmforge.generate.sampling import make_generators, process_logits, sample

        tok = trainer.tokenizer
        try:
            ids = tok.encode(self.prompt) if self.prompt else []
        except LmforgeError:  # e.g. a character the char tokenizer never saw
            ids = []
        ids = ids or [trainer.meta.get("eos_id") or 0]
        generators = make_generators(trainer.cfg.train.seed, 1)  # CPU generators: draw on CPU
        x = torch.tensor([ids], dtype=torch.long, device=trainer.device)  # [1, T]
        block = trainer.cfg.train.block_size
        model = trainer.model  # FSDP needs every rank in the forward; plain modules run anywhere
        model.eval()
        for _ in range(self.n_tokens):
            with trainer.autocast():
                logits = model(x[:, -block:])[:, -1]  # [1, V]
            logits = process_logits(logits.float().cpu(), self.params)
            nxt = sample(logits, self.params.greedy, generators)  # [1]
            x = torch.cat([x, nxt[:, None].to(trainer.device)], dim=1)
        model.train()
        return tok.decode(x[0, len(ids) :].tolist())


class LossPlot(Callback):
    """OUT/loss.png: the train and validation curves of trainer.history."""

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.dist.main:
            plot_losses(trainer.history, trainer.out / "loss.png")


def plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    tr = [(m["step"], m["train_loss"]) for m in history if "train_loss" in m]
    va = [(m["step"], m["val_loss"]) for m in history if "val_loss" in m]
    if tr:
        ax.plot(*zip(*tr, strict=True), label="train", lw=1.2)
    if va:
        ax.plot(*zip(*va, strict=True), "o-", label="val", lw=1.6, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class ExportModel(Callback):
    """The trained model in the native format (config.json, model.safetensors, tokenizer) in OUT,
    via lmforge.checkpoint.save_pretrained: `lmforge generate --model OUT` loads it."""

    def on_train_end(self, trainer: Trainer) -> None:
        model = trainer.raw_model
        if D.is_fsdp(trainer.model):  # gather the shards (every rank), rebuild a plain module
            state = D.full_model_state(trainer.model)
            if trainer.dist.main:
                model = Transformer.from_state_dict(trainer.model_config, state)
        if trainer.dist.main:
            was_training = model.training
            model.eval()
            save_pretrained(model, trainer.tokenizer, trainer.out)
            model.train(was_training)
