"""A training run as `lmforge train` makes it: the loop with the default callbacks.

    from lmforge.train import load_config, train
    result = train(load_config("configs/shakespeare_char.toml"), "runs/shakespeare")

The loop (`trainer`) knows only the hook interface; the callbacks (`callbacks`) know the loop;
this module, above both, puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lmforge.train import distributed as D
from lmforge.train.callbacks import default_callbacks
from lmforge.train.config import TrainConfig
from lmforge.train.trainer import Callback, Trainer, TrainResult


def train(
    cfg: TrainConfig, out_dir: str | Path, callbacks: Sequence[Callback] | None = None
) -> TrainResult:
    """Run (or resume) a training run; under torchrun every rank calls this. `callbacks`
    replaces the default ones (`default_callbacks(cfg)`)."""
    trainer = Trainer(cfg, out_dir, default_callbacks(cfg) if callbacks is None else callbacks)
    try:
        return trainer.fit()
    finally:
        D.cleanup(trainer.dist)
