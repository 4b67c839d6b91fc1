"""Mixture-of-Experts feed-forward: top-k routing, no token dropping, load-balancing loss.

A linear router scores every expert for every token; each token goes to its k best experts and
their outputs are mixed with the renormalised router probabilities (as in Mixtral). No expert has
a capacity limit, so no token is ever dropped. The auxiliary loss is the Switch Transformer one:

    aux = n_experts * sum_e f_e * P_e

f_e = fraction of routed (token, slot) assignments that went to expert e, P_e = mean router
probability of e. It is 1.0 when routing is uniform and grows as it concentrates; only P_e
carries gradient, which pushes the router towards balance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.model.config import ModelConfig
from lmforge.model.mlp import FeedForward


class MoEFeedForward(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_experts, self.top_k = config.n_experts, config.n_experts_per_token
        self.router = nn.Linear(config.dim, config.n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(config) for _ in range(config.n_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape  # [B, T, C]
        x = x.reshape(-1, shape[-1])  # [N, C] tokens
        probs = F.softmax(self.router(x), dim=-1, dtype=torch.float32)  # [N, E]
        weights, chosen = probs.topk(self.top_k, dim=-1)  # [N, k] each
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)

        out = torch.zeros_like(x)  # [N, C]
        for e, expert in enumerate(self.experts):
            # the tokens that picked expert e, and in which of their k slots
            token_idx, slot = torch.where(chosen == e)
            if token_idx.numel() == 0:
                continue
            y = expert(x[token_idx]) * weights[token_idx, slot, None]  # [n_e, C]
            out.index_add_(0, token_idx, y)

        # load-balancing loss (Switch Transformer), over all N*k assignments
        counts = torch.bincount(chosen.flatten(), minlength=self.n_experts).to(probs.dtype)  # [E]
        fraction = counts / chosen.numel()
        aux = self.n_experts * (fraction * probs.mean(dim=0)).sum()
        return out.reshape(shape), aux
