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
        logits = model(batch.x, positions=batch.positions, mask=batch.mask)  # [B, T, V]
        ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.y.reshape(-1))
        metrics = {"loss": ce}  # the cross-entropy alone: nats per token, comparable across runs
        aux = _aux_loss(model)
        if aux is None:
            return ce, metrics
        metrics["aux_loss"] = aux
        return ce + aux, metrics


def _aux_loss(model: nn.Module) -> torch.Tensor | None:
    """The MoE balancing loss of the forward pass just run (None for a dense model).

    The one place that knows how the model hands it over: today the Transformer leaves it in its
    `aux_loss` attribute, which DDP and torch.compile hide behind `.module` / their own getattr.
    """
    inner = getattr(model, "module", model)
    if not getattr(inner.config, "n_experts", 0):
        return None
    return inner.aux_loss
