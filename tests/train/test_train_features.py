"""The training core's parts: MoE, accumulation, precisions, packing modes, schedule, outputs."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from lmforge.train import train
from lmforge.train.config import OptimSection
from lmforge.train.optim import build_optimizer, lr_at

from .conftest import read_metrics, tiny_config


def test_outputs_of_a_run(char_data, tmp_path):
    result = train(tiny_config(char_data), tmp_path)
    metrics = read_metrics(tmp_path)
    assert [m["step"] for m in metrics] == list(range(1, 13))
    for m in metrics:
        assert {"step", "train_loss", "lr", "tokens_per_s", "elapsed_s", "mfu"} <= set(m)
    evals = [m for m in metrics if "val_loss" in m]
    assert [m["step"] for m in evals] == [6, 12]
    assert evals[-1]["val_ppl"] == pytest.approx(math.exp(evals[-1]["val_loss"]), rel=1e-3)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]  # it learns
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "train_config.toml").is_file()
    assert "--- step 6" in (tmp_path / "samples.txt").read_text()
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == 62  # 200 kB alphabet
    assert result.val_loss == evals[-1]["val_loss"]


def test_moe_trains_and_every_expert_learns(char_data, tmp_path):
    from lmforge.train import Trainer, default_callbacks

    cfg = tiny_config(
        char_data,
        model={"n_experts": 4, "n_experts_per_token": 2, "moe_aux_loss_weight": 0.01},
        train={"max_iters": 8},
    )
    trainer = Trainer(cfg, tmp_path, default_callbacks(cfg))  # metrics.jsonl is read below
    before = {
        n: p.detach().clone() for n, p in trainer.raw_model.named_parameters() if ".experts." in n
    }
    # one step by hand: every expert's weights receive gradient, and the aux loss reaches the router
    batch = trainer.train_batches.batch(0)
    loss, metrics = trainer.objective.loss(trainer.model, batch)
    assert metrics["aux_loss"].item() > 0 and loss.requires_grad
    torch.testing.assert_close(loss, metrics["loss"] + metrics["aux_loss"], rtol=0, atol=0)
    loss.backward()
    for name, p in trainer.raw_model.named_parameters():
        if ".experts." in name or "router" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    router = next(p for n, p in trainer.raw_model.named_parameters() if "router" in n)
    g_with_aux = router.grad.clone()
    trainer.optimizer.zero_grad()
    logits = trainer.model(batch.x)  # the cross-entropy alone
    F.cross_entropy(logits.view(-1, logits.size(-1)), batch.y.reshape(-1)).backward()
    assert not torch.allclose(router.grad, g_with_aux)  # the balancing loss moves the router
    trainer.optimizer.zero_grad()
    result = trainer.fit()
    metrics = read_metrics(tmp_path)
    assert all(m["aux_loss"] > 0 for m in metrics)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    for name, p in trainer.raw_model.named_parameters():
        if name in before:
            assert not torch.equal(p.detach(), before[name]), f"{name} never updated"
    assert result.step == 8


def test_grad_accumulation_matches_one_big_batch(char_data, tmp_path):
    a = train(
        tiny_config(char_data, train={"max_iters": 4, "batch_size": 8, "grad_accum": 1}),
        tmp_path / "a",
    )
    b = train(
        tiny_config(char_data, train={"max_iters": 4, "batch_size": 8, "grad_accum": 4}),
        tmp_path / "b",
    )
    for x, y in zip(a.metrics, b.metrics, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_runs(char_data, tmp_path, dtype):
    from lmforge.train.trainer import Trainer

    cfg = tiny_config(char_data, train={"max_iters": 4, "dtype": dtype}, eval={"sample_tokens": 0})
    trainer = Trainer(cfg, tmp_path)
    assert trainer.scaler.is_enabled() == (dtype == "float16")  # GradScaler only for fp16
    result = trainer.fit()
    assert math.isfinite(result.train_loss)
    assert next(trainer.raw_model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_sequential_curriculum_with_document_masks(tmp_path, shared_data):
    from lmforge.data import PrepareConfig, prepare

    d = json.loads((shared_data / "xquad-en" / "xquad.en.json").read_text())
    texts = [p["context"] for a in d["data"] for p in a["paragraphs"]][:80]
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    prepare(
        [src],
        tmp_path / "data",
        PrepareConfig(tokenizer="char", workers=1, progress=False, filters=None),
    )
    cfg = tiny_config(
        tmp_path / "data",
        data={"sampling": "sequential", "order": "length", "doc_mask": True},
        train={"max_iters": 4},
    )
    result = train(cfg, tmp_path / "run")
    assert math.isfinite(result.val_loss)


def test_weight_decay_only_on_matrices():
    model = torch.nn.Sequential(
        torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 4)
    )
    opt = build_optimizer(model, OptimSection(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and len(decay["params"]) == 2
    assert all(p.dim() == 1 for p in no_decay["params"]) and len(no_decay["params"]) == 3


def test_warmup_then_cosine():
    cfg = OptimSection(lr=1.0, min_lr=0.1, warmup_iters=10)
    assert lr_at(0, cfg, 110) == pytest.approx(0.1)
    assert lr_at(9, cfg, 110) == pytest.approx(1.0)
    assert lr_at(60, cfg, 110) == pytest.approx(0.55)  # halfway through the cosine
    assert lr_at(110, cfg, 110) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg, 110) for s in range(10, 110)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


@pytest.mark.slow
def test_compile(char_data, tmp_path):
    result = train(
        tiny_config(char_data, train={"max_iters": 3, "compile": True}, eval={"sample_tokens": 0}),
        tmp_path,
    )
    assert math.isfinite(result.train_loss)
