"""What an objective is: the one thing that changes between pretraining, fine-tuning and alignment.

The loop (lmforge.train.trainer) owns everything else: batches, devices, autocast, accumulation,
clipping, the optimizer, distributed wrappers, checkpoints. It calls `objective.loss(model,
batch)` under autocast on each micro-batch, backpropagates the loss, and logs the metrics
(averaged over micro-batches and ranks): `metrics["loss"]` as `train_loss`, every other metric
under its own name; evaluation logs them all again with a `val_` prefix.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Objective(Protocol):
    # the recipe's `train.objective`
    name: str
    # metrics["loss"] is a mean negative log-likelihood per token, so exp(val_loss) is the
    # validation perplexity (true for pretraining and SFT; not for reward or preference losses)
    perplexity: bool

    def loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """batch (already on the model's device) -> (the loss to minimise, named 0-dim metrics).

        `model` is what the loop trains through (possibly DDP-, FSDP- or compile-wrapped): call
        it, don't reach into it. The metrics must contain "loss", named as the objective's paper
        names it; the loop detaches them.
        """
        ...
