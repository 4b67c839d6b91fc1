"""Lazy package exports (PEP 562).

A room's ``__init__`` names its public API in a dict and loads each module on first use, so that
``lmforge --help`` and the command line's argument parsing do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``package.<exports[name]>`` on first access."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
