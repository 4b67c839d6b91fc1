"""The feed-forward network of a block: SwiGLU (Llama family) or GELU (GPT-2 family)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.model.config import ModelConfig


def dropout(p: float) -> nn.Module:
    # without dropout, skip even the no-op call: decoding runs ~60 of these per token
    return nn.Dropout(p) if p > 0 else nn.Identity()


class FeedForward(nn.Module):
    """SwiGLU (w2(silu(w1 x) * w3 x)) or GELU (w2(gelu(w1 x))) multi-layer perceptron."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        self.approximate = config.gelu_approximate
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=config.bias)  # gate / fc
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=config.bias)  # down / proj
        if self.swiglu:
            self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=config.bias)  # up
        self.dropout = dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., C] -> [..., C]
        if self.swiglu:
            h = F.silu(self.w1(x)) * self.w3(x)
        else:
            h = F.gelu(self.w1(x), approximate=self.approximate)
        return self.dropout(self.w2(h))
