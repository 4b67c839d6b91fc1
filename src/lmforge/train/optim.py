"""AdamW with weight decay on matrices only, and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmforge.train.config import OptimSection


def build_optimizer(model: nn.Module, cfg: OptimSection, device_type: str) -> torch.optim.AdamW:
    """AdamW; 2-D+ tensors (linear weights, embeddings) decay, vectors (norms, biases) do not.

    Tied weights appear once (named_parameters de-duplicates). The fused kernel is used where
    this build of torch has one for the device (CPU and CUDA in torch >= 2.4).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if cfg.fused and device_type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError):  # e.g. DTensor params (FSDP) on an older torch
            pass
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


def lr_at(step: int, cfg: OptimSection, max_iters: int) -> float:
    """Linear warmup from lr/warmup to lr, then cosine decay to min_lr at lr_decay_iters."""
    decay_iters = cfg.lr_decay_iters or max_iters
    if cfg.warmup_iters and step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    if step >= decay_iters:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimSection, max_iters: int):
    """LambdaLR so the schedule's position is part of the checkpoint like everything else."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, cfg, max_iters) / cfg.lr if cfg.lr else 0.0
    )
