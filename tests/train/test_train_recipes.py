"""The shipped recipes, run as a user runs them (`lmforge train configs/...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def lmforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from lmforge.cli import main; raise SystemExit(main())", *args],
        cwd=REPO, capture_output=True, text=True, timeout=1200, env={**os.environ},
    )  # fmt: skip


@pytest.mark.slow
def test_shakespeare_char_reaches_1_88(tmp_path):
    """The full recipe, unchanged (700 steps; about a minute on 2 AVX2 cores)."""
    r = lmforge("train", "configs/shakespeare_char.toml", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    final = metrics[-1]
    assert final["step"] == 700
    assert final["val_loss"] <= 1.88, final
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "loss.png").is_file()


@pytest.mark.slow
def test_shakespeare_bpe_recipe_runs(tmp_path):
    """The BPE recipe trains our tokenizer on the text and learns (shortened to 60 steps)."""
    r = lmforge("train", "configs/shakespeare_bpe.toml", "--out", str(tmp_path),
                "--set", "train.max_iters=60", "--set", "optim.warmup_iters=10",
                "--set", "eval.interval=30", "--set", "eval.iters=4")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["val_loss"] < metrics[0]["train_loss"] - 0.8  # ln(1024) = 6.93 at the start
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == 1024
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()


def test_missing_data_file_is_a_clear_error(tmp_path):
    r = lmforge("train", "configs/shakespeare_char.toml", "--out", str(tmp_path),
                "--set", "data.path=/nonexistent/corpus.txt")  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "/nonexistent/corpus.txt" in r.stderr
