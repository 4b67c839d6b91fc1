"""Small shared pieces for the training tests: a tiny char corpus and a tiny recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.data import PrepareConfig, prepare
from lmforge.train import config_from_dict
from lmforge.train.config import to_toml


@pytest.fixture(scope="session")
def char_data(tmp_path_factory, shared_data) -> Path:
    """The first 200 kB of TinyShakespeare, char-tokenized (90/10 split)."""
    root = tmp_path_factory.mktemp("char_data")
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:200_000]
    src = root / "shakespeare_200k.txt"
    src.write_text(text, encoding="utf-8")
    prepare([src], root / "data", PrepareConfig(tokenizer="char", filters=None, near_dedup=False,
                                                workers=1, progress=False))  # fmt: skip
    return root / "data"


def tiny_recipe(data_dir: Path, **sections) -> dict:
    """A 2-layer, 32-wide model for a few steps: enough to exercise every code path quickly."""
    raw = {
        "model": {"preset": "shakespeare-char", "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
        "data": {"dir": str(data_dir)},
        "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_iters": 3},
        "train": {"max_iters": 12, "batch_size": 8, "block_size": 32, "log_interval": 1,
                  "dtype": "float32", "progress": False, "peak_flops": 1e11},
        "eval": {"interval": 6, "iters": 2, "sample_tokens": 8},
    }  # fmt: skip
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def tiny_config(data_dir: Path, **sections):
    return config_from_dict(tiny_recipe(data_dir, **sections), "<test>")


def read_metrics(out: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]


def write_toml(path: Path, raw: dict) -> Path:
    path.write_text(to_toml(raw))
    return path
