"""Objectives: what the training loop minimises, one file each, chosen by name in the recipe.

    [train]
    objective = "pretrain"      # the default

An objective (base.Objective) turns a batch into a loss and named metrics; the loop, the
callbacks and the checkpoints are the same for all of them. To add one, write
`objectives/<name>.py` with a class whose `name` is <name> (its loss written as its paper writes
it, its metrics named as its field names them) and list it below.
"""

from __future__ import annotations

from lmforge.errors import LmforgeError
from lmforge.train.objectives.base import Objective
from lmforge.train.objectives.pretrain import Pretrain

OBJECTIVES: dict[str, type] = {cls.name: cls for cls in (Pretrain,)}


def build_objective(name: str) -> Objective:
    """The objective registered as `name`; an unknown name is an error listing the known ones."""
    if name not in OBJECTIVES:
        raise LmforgeError(f"unknown objective {name!r} (known: {', '.join(sorted(OBJECTIVES))})")
    return OBJECTIVES[name]()


__all__ = ["OBJECTIVES", "Objective", "Pretrain", "build_objective"]
