"""Training: one loop (accumulation, clipping, autocast, GradScaler, exact checkpoint/resume,
DDP/FSDP under torchrun), objectives that turn a batch into a loss (`pretrain` today), and
callbacks for logging, evaluation, samples, checkpoints and the exported model.

    from lmforge.train import load_config, train
    cfg = load_config("configs/shakespeare_char.toml", ["train.max_iters=500"])
    result = train(cfg, "runs/char")      # result.val_loss, result.metrics

See docs/training.md.
"""

from lmforge.lazy import lazy_exports

# Loaded on first use (PEP 562): `lmforge --help` must not pay for importing torch.
_EXPORTS = {
    "TrainConfig": "config",
    "config_from_dict": "config",
    "load_config": "config",
    "parse_override": "config",
    "set_key": "config",
    "Callback": "trainer",
    "default_callbacks": "callbacks",
    "OBJECTIVES": "objectives",
    "Objective": "objectives",
    "build_objective": "objectives",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "train": "run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
