"""Pretraining: next-token cross-entropy, plus the MoE load-balancing loss when the model has experts.

    L = -1/N sum_t log p(x_{t+1} | x_{<=t})  +  L_aux

L_aux is the Switch Transformer balancing loss (Fedus et al. 2021), averaged over MoE layers and
already weighted by `model.moe_aux_loss_weight`; it is zero for dense models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.data.packing import Batch


class Pretrain:
    name = "pretrain"
    perplexity = True

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch.x, positions=batch.positions, mask=batch.mask, full_output=True)
        logits = out.logits  # [B, T, V]
        ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.y.reshape(-1))
        metrics = {"loss": ce}  # the cross-entropy alone: nats per token, comparable across runs
        if not _has_experts(model):
            return ce, metrics
        metrics["aux_loss"] = out.aux_loss
        return ce + out.aux_loss, metrics


def _has_experts(model: nn.Module) -> bool:
    inner = getattr(model, "module", model)  # DDP / FSDP / torch.compile wrap the Transformer
    inner = getattr(inner, "_orig_mod", inner)
    return bool(getattr(inner.config, "n_experts", 0))
