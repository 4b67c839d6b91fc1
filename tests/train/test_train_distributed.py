"""Data-parallel training: 2 processes (gloo, CPU) give the loss curve of 1 process, same global batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lmforge.train import train

from .conftest import read_metrics, tiny_config, tiny_recipe, write_toml

SECTIONS = dict(
    train={"max_iters": 6, "grad_accum": 2, "batch_size": 8},
    eval={"interval": 3, "iters": 2, "sample_tokens": 4},
)


def run_torchrun(recipe, out, *extra: str) -> None:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "lmforge.cli",
         "train", str(recipe), "--out", str(out), *extra],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_two_processes_match_one(char_data, tmp_path, strategy):
    single = train(tiny_config(char_data, **SECTIONS), tmp_path / "single")
    recipe = write_toml(
        tmp_path / "r.toml", tiny_recipe(char_data, **SECTIONS, dist={"strategy": strategy})
    )
    run_torchrun(recipe, tmp_path / "ddp")
    got = read_metrics(tmp_path / "ddp")
    assert [m["step"] for m in got] == [m["step"] for m in single.metrics]
    for a, b in zip(single.metrics, got, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (a, b)
        if "val_loss" in a:
            assert abs(a["val_loss"] - b["val_loss"]) < 1e-4, (a, b)
    assert (tmp_path / "ddp" / "checkpoint" / "state.pt").is_file()
