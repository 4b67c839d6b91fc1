"""Callbacks: when the loop calls each hook, a loop that runs without any, and the sampler."""

from __future__ import annotations

import subprocess
import sys

import torch

from lmforge.train import Callback, Trainer, default_callbacks, train
from lmforge.train.callbacks import Samples

from .conftest import tiny_config


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_start(self, trainer):
        self.calls.append(("start", trainer.step))

    def on_evaluate(self, trainer, record):
        self.calls.append(("evaluate", trainer.step, "val_loss" in record))

    def on_log(self, trainer, record):
        assert trainer.history[-1] is record
        self.calls.append(("log", record["step"], "val_loss" in record, "mfu" in record))

    def on_step_end(self, trainer):
        self.calls.append(("step", trainer.step))

    def on_train_end(self, trainer):
        self.calls.append(("end", trainer.step))


def test_hooks_in_order(char_data, tmp_path):
    cfg = tiny_config(char_data, train={"max_iters": 4, "log_interval": 2}, eval={"interval": 3})
    recorder = Recorder()
    train(cfg, tmp_path, [*default_callbacks(cfg), recorder])
    assert recorder.calls == [
        ("start", 0),
        ("log", 1, False, True), ("step", 1),  # step 1 is always logged
        ("log", 2, False, True), ("step", 2),
        ("evaluate", 3, True), ("log", 3, True, True), ("step", 3),  # Evaluation came first
        ("evaluate", 4, True), ("log", 4, True, True), ("step", 4),  # the last step evaluates
        ("end", 4),
    ]  # fmt: skip


def test_the_loop_runs_without_callbacks(char_data, tmp_path):
    result = train(tiny_config(char_data, train={"max_iters": 3}), tmp_path, callbacks=[])
    assert [r["step"] for r in result.metrics] == [1, 2, 3]
    assert set(result.metrics[-1]) == {"step", "train_loss", "lr", "grad_norm"}
    assert result.val_loss is None and result.train_loss == result.metrics[-1]["train_loss"]
    written = {p.name for p in tmp_path.iterdir()}
    assert not written & {"metrics.jsonl", "checkpoint", "samples.txt", "loss.png"}


def test_samples_go_through_generates_sampler(char_data, tmp_path):
    cfg = tiny_config(char_data, train={"max_iters": 2})
    trainer = Trainer(cfg, tmp_path, callbacks=[])
    trainer.fit()
    prompt = "ROMEO:"

    # greedy by hand, with the model as the callback runs it
    ids = trainer.tokenizer.encode(prompt)
    x = torch.tensor([ids])
    trainer.model.eval()
    with torch.no_grad():
        for _ in range(12):
            x = torch.cat([x, trainer.model(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    trainer.model.train()
    greedy = trainer.tokenizer.decode(x[0, len(ids) :].tolist())

    def draw(**kw) -> str:
        samples = Samples(12, prompt, **kw)
        samples.on_train_start(trainer)
        rng = torch.get_rng_state()
        text = samples.sample(trainer)
        assert torch.equal(torch.get_rng_state(), rng)  # the training RNG stream is untouched
        return text

    assert draw(temperature=0.0) == greedy
    assert draw(temperature=0.8, top_k=1) == greedy  # top-k reaches the sampler
    assert draw(temperature=1.0, top_k=0) == draw(temperature=1.0, top_k=0)  # its own seed
    assert draw(temperature=5.0, top_k=0) != greedy


def test_generate_is_imported_only_when_sampling():
    code = (
        "import sys, lmforge.train.trainer\n"
        "assert 'lmforge.generate' not in sys.modules, 'train imports generate at load time'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
