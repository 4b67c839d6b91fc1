"""Recipes: strict keys, --set overrides, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.train.config import load_config, parse_override

REPO = Path(__file__).resolve().parents[2]


def test_recipes_load():
    for name in ("shakespeare_char", "shakespeare_bpe"):
        cfg = load_config(REPO / "configs" / f"{name}.toml")
        assert cfg.train.max_iters > 0


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[train]\nmax_iter = 5\n", "train.max_iter"),
        ("[optimizer]\nlr = 1\n", "[optimizer]"),
        ("[model]\nwidth = 5\n", "model.width"),
        ("[train]\nmax_iters = 'many'\n", "train.max_iters"),
        ("[train]\ncompile = 1\n", "train.compile"),
        ("[train\n", "invalid TOML"),
    ],
)
def test_wrong_key_or_value_is_a_clear_error(tmp_path, toml, needle):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(LmforgeError) as info:
        load_config(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_set_overrides(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[optim]\nlr = 1e-3\n")
    cfg = load_config(
        path, ["optim.lr=3e-3", "data.path=some/file.txt", "model.n_layers=2", "train.compile=true"]
    )
    assert cfg.optim.lr == 3e-3 and cfg.data.path == "some/file.txt"
    assert cfg.model.overrides["n_layers"] == 2 and cfg.train.compile is True
    assert parse_override("eval.sample_prompt=ROMEO:") == ("eval.sample_prompt", "ROMEO:")
    with pytest.raises(LmforgeError, match=r"optim\.lrate"):
        load_config(path, ["optim.lrate=1"])
    with pytest.raises(LmforgeError, match="key=value"):
        load_config(path, ["optim.lr"])


def test_missing_config_file():
    with pytest.raises(LmforgeError, match="config file not found"):
        load_config("/nonexistent/recipe.toml")


def test_cli_wrong_key_exits_1_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlearning_rate = 1\n")
    r = subprocess.run(
        [sys.executable, "-c", "from lmforge.cli import main; raise SystemExit(main())",
         "train", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "train.learning_rate" in r.stderr


def test_recipes_name_their_objective():
    for name in ("shakespeare_char", "shakespeare_bpe"):
        assert load_config(REPO / "configs" / f"{name}.toml").train.objective == "pretrain"
    assert load_config(None).train.objective == "pretrain"  # the default


def test_unknown_objective_lists_the_known_ones(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[train]\nobjective = "pretrian"\n')
    with pytest.raises(LmforgeError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "train.objective" in msg and "'pretrian'" in msg
    assert "known: pretrain" in msg
    with pytest.raises(LmforgeError, match="known: pretrain"):
        load_config(None, ["train.objective=dpo"])


@pytest.mark.parametrize(("name", "ok"), [("auto", True), ("fp32", True), ("float32", True),
                                          ("bf16", True), ("bfloat16", True), ("float16", True),
                                          ("fp8", False), ("double", False)])  # fmt: skip
def test_dtype_uses_the_one_precision_vocabulary(name, ok):
    if ok:
        assert load_config(None, [f"train.dtype={name}"]).train.dtype == name
    else:
        with pytest.raises(LmforgeError, match=r"train\.dtype.*auto, fp32, bf16, fp16"):
            load_config(None, [f"train.dtype={name}"])


def test_non_positive_sizes_are_errors():
    with pytest.raises(LmforgeError, match=r"train\.grad_accum must be positive"):
        load_config(None, ["train.grad_accum=0"])
