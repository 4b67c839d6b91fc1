"""Kill a training process mid-run, start it again, and get the same losses as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from lmforge.train import train
from lmforge.train.trainer import CHECKPOINT

from .conftest import read_metrics, tiny_config, tiny_recipe, write_toml

# dropout makes the RNG streams matter; sequential sampling exercises the data position
SECTIONS = dict(
    model={
        "preset": "shakespeare-char",
        "dim": 32,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dim": 64,
        "dropout": 0.1,
    },
    # peak_flops 0: the MFU measurement runs at every start and must not touch the RNG streams
    train={"max_iters": 24, "checkpoint_interval": 4, "num_threads": 1, "peak_flops": 0.0},
    eval={"interval": 8, "iters": 2, "sample_tokens": 0},
)


def test_resume_after_kill_equals_uninterrupted(char_data, tmp_path):
    reference = train(tiny_config(char_data, **SECTIONS), tmp_path / "ref")

    out = tmp_path / "killed"
    recipe = write_toml(tmp_path / "r.toml", tiny_recipe(char_data, **SECTIONS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lmforge.cli import main; raise SystemExit(main())",
         "train", str(recipe), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    ckpt = out / CHECKPOINT
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and torch.load(ckpt, weights_only=False)["step"] >= 8:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before it was killed: {proc.stderr.read()[-500:]}"
    )
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert 8 <= killed_at < 24

    resumed = train(tiny_config(char_data, **SECTIONS), out)
    ref = {m["step"]: m for m in reference.metrics}
    got = {m["step"]: m for m in read_metrics(out)}
    assert sorted(got) == sorted(ref)  # one line per step, nothing lost or doubled
    timing = {"tokens_per_s", "elapsed_s", "mfu"}
    for step, m in ref.items():
        assert got[step]["train_loss"] == m["train_loss"], step  # bit-for-bit on CPU
        if "val_loss" in m:
            assert got[step]["val_loss"] == m["val_loss"], step
        same = {k: v for k, v in m.items() if k not in timing}  # lr, grad_norm, val_ppl too
        assert {k: v for k, v in got[step].items() if k not in timing} == same, step
    assert resumed.val_loss == reference.val_loss


def test_checkpoint_contents_and_atomic_write(char_data, tmp_path):
    train(tiny_config(char_data, train={"max_iters": 4}), tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "data", "step", "history"} <= set(
        state
    )
    assert [r["step"] for r in state["history"]] == [1, 2, 3, 4]  # what metrics.jsonl holds
    assert state["step"] == 4 and state["data"]["step"] == 4
    assert state["scheduler"]["last_epoch"] == 4
    assert not list((tmp_path / "checkpoint").glob("*.tmp"))  # the temporary file was renamed


def test_finished_run_is_not_retrained(char_data, tmp_path):
    first = train(tiny_config(char_data, train={"max_iters": 4}), tmp_path)
    again = train(tiny_config(char_data, train={"max_iters": 4}), tmp_path)
    assert again.step == 4 and len(read_metrics(tmp_path)) == len(first.metrics)
