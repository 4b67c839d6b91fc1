"""Process-group setup for data-parallel training under torchrun (or mp.spawn).

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1 we
join the group (NCCL on GPUs, gloo on CPU) and wrap the model in DDP or FSDP.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from lmforge.errors import LmforgeError


@dataclass
class DistInfo:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str, device_type: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise LmforgeError(f"dist.backend must be auto, gloo or nccl, got {backend!r}")
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(world, rank, local_rank)


def wrap_model(model: nn.Module, strategy: str, info: DistInfo, device: torch.device) -> nn.Module:
    if not info.enabled:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        # MoE: an expert may get no tokens in a micro-batch, so some parameters can be unused.
        unused = bool(getattr(getattr(model, "config", None), "n_experts", 0))
        ids = [device.index] if device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=unused)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    raise LmforgeError(f"dist.strategy must be ddp or fsdp, got {strategy!r}")


def no_sync(model: nn.Module, info: DistInfo, skip: bool) -> AbstractContextManager:
    """DDP: no gradient all-reduce in this backward (every micro-batch of a step but the last)."""
    if skip and info.enabled and hasattr(model, "no_sync"):
        return model.no_sync()
    return nullcontext()


def is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


# Under FSDP a full state dict is gathered onto the CPU of every rank, a collective: every rank
# must call these. Otherwise it is the (DDP-unwrapped) module's own state, without `module.`.
def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict:
    """The whole model's state, as one process would hold it."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_full_options())
    return unwrap(model).state_dict()


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_full_options())
    return optimizer.state_dict()


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict, optim_sd: dict
) -> None:
    """The inverse of full_model_state and full_optimizer_state (FSDP: each rank its shards)."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import (
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        set_model_state_dict(model, model_sd, options=_full_options())
        set_optimizer_state_dict(model, optimizer, optim_sd, options=_full_options())
        return
    unwrap(model).load_state_dict(model_sd)
    optimizer.load_state_dict(optim_sd)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP shards the module in place: it is its own)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world
    return value


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
