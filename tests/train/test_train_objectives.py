"""Objectives: the registry, and pretrain's loss as the formula writes it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.data.packing import Batch
from lmforge.errors import LmforgeError
from lmforge.model import ModelConfig, Transformer
from lmforge.train.objectives import OBJECTIVES, Objective, Pretrain, build_objective


def test_registry_builds_by_name():
    objective = build_objective("pretrain")
    assert isinstance(objective, Pretrain) and isinstance(objective, Objective)
    assert all(cls.name == name for name, cls in OBJECTIVES.items())
    with pytest.raises(LmforgeError, match=r"unknown objective 'sft' \(known: pretrain\)"):
        build_objective("sft")


def _model(**overrides) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig.preset("shakespeare-char", vocab_size=50, dim=32, n_layers=2, n_heads=2,
                             hidden_dim=64, max_seq_len=16, **overrides)  # fmt: skip
    return Transformer(cfg)


def _batch() -> Batch:
    data = torch.randint(0, 50, (3, 17), generator=torch.Generator().manual_seed(1))
    return Batch(data[:, :-1], data[:, 1:])


def test_pretrain_is_next_token_cross_entropy():
    model, batch = _model(), _batch()
    loss, metrics = Pretrain().loss(model, batch)
    logits = model(batch.x)
    expected = F.cross_entropy(logits.view(-1, 50), batch.y.reshape(-1))
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    assert set(metrics) == {"loss"} and metrics["loss"] is loss  # dense: no balancing term


def test_pretrain_adds_the_moe_balancing_loss():
    model, batch = _model(n_experts=4, n_experts_per_token=2, moe_aux_loss_weight=0.5), _batch()
    loss, metrics = Pretrain().loss(model, batch)
    assert set(metrics) == {"loss", "aux_loss"}
    assert metrics["aux_loss"].item() > 0.4  # about the weight when routing is near uniform
    torch.testing.assert_close(loss, metrics["loss"] + metrics["aux_loss"], rtol=0, atol=0)
