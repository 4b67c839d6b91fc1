"""load_model: one entry point for every checkpoint kind we read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmforge.assets import resolve_model_path
from lmforge.checkpoint.gguf import GGUF_MAGIC, read_gguf
from lmforge.checkpoint.gguf_model import gguf_to_model
from lmforge.checkpoint.hf import load_hf_model
from lmforge.errors import LmforgeError
from lmforge.model import Transformer

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}  # fmt: skip


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise LmforgeError(f"unknown dtype {dtype!r} (choose from {', '.join(_DTYPES)})")
    return _DTYPES[dtype]


def load_model(
    spec: str | Path, dtype: torch.dtype | str = torch.float32, *, tokenizer: bool = True
) -> tuple[Transformer, Any]:
    """(model, tokenizer) from a registered name, a GGUF file or a model directory.

    The model comes back in eval mode with weights in `dtype` (quantized GGUF weights are
    dequantized). The tokenizer is None when the checkpoint carries none (or tokenizer=False).
    """
    dtype = as_dtype(dtype)
    path = resolve_model_path(spec)
    metadata = None
    if path.is_dir():
        model = load_hf_model(path, dtype)
    elif _is_gguf(path):
        gguf_file = read_gguf(path)
        model = gguf_to_model(gguf_file, dtype)
        metadata = gguf_file.metadata
    else:
        raise LmforgeError(
            f"{path}: not a model (expected a GGUF file or a directory with config.json)"
        )
    model.eval()
    return model, (_load_tokenizer(path, metadata) if tokenizer else None)


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError as e:
        raise LmforgeError(f"{path}: cannot read ({e.strerror})") from e


def _load_tokenizer(path: Path, gguf_metadata: dict[str, Any] | None = None) -> Any:
    if path.is_dir() and not any((path / n).is_file() for n in (
            "tokenizer.json", "lmforge_tokenizer.json", "vocab.json")):  # fmt: skip
        return None
    if gguf_metadata is not None:
        if "tokenizer.ggml.model" not in gguf_metadata:
            return None
        from lmforge.tokenizer.gguf import read_gguf_tokenizer

        # hand over the metadata we already parsed: gguf.GGUFReader needs seconds for it
        return read_gguf_tokenizer(path, reader=_MetadataReader(gguf_metadata))
    from lmforge.tokenizer import load_tokenizer

    return load_tokenizer(path)


class _MetadataReader:
    """The part of gguf.GGUFReader that read_gguf_tokenizer uses: fields[key].contents()."""

    class _Field:
        def __init__(self, value: Any) -> None:
            self.value = value

        def contents(self) -> Any:
            return self.value

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.fields = {k: self._Field(v) for k, v in metadata.items()}
