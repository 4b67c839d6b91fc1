"""load_model: one entry point for every checkpoint kind we read, returning a ModelHandle.

    handle = load_model(DEFAULT_MODEL)                                 # fp32 float weights
    handle = load_model(DEFAULT_MODEL, precision="auto", quantize="auto")  # what chat uses

A GGUF file is parsed once: its tensors give the model, its metadata the tokenizer, and its
Q4_0/Q4_1 blocks the int4 layers (`gguf_quant`), so int4 decoding rounds nothing twice.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from lmforge.assets import resolve_model_path, resolve_precision
from lmforge.checkpoint.gguf import GGUF_MAGIC, GGUFFile, read_gguf
from lmforge.checkpoint.gguf_model import gguf_to_model
from lmforge.checkpoint.gguf_quant import gguf_exact_layers, is_int4_file
from lmforge.checkpoint.handle import ModelHandle
from lmforge.checkpoint.hf import load_hf_model
from lmforge.errors import LmforgeError

QUANTIZE = ("int8", "int4", "fp16")  # weight-only modes of lmforge.model.quantize


def quantize_name(quantize: str | None) -> str | None:
    """The canonical quantization choice: None (float), "auto" or one of QUANTIZE."""
    if quantize is None or quantize == "none":
        return None
    if quantize not in (*QUANTIZE, "auto"):
        raise LmforgeError(
            f"unknown quantization {quantize!r} (choose from {', '.join(QUANTIZE)}, auto or none)"
        )
    return quantize


def load_model(
    spec: str | Path,
    *,
    precision: str | torch.dtype = "fp32",
    quantize: str | None = None,
    group_size: int = 32,
    tokenizer: bool = True,
) -> ModelHandle:
    """The model of a registered name, a GGUF file or a model directory, with its tokenizer.

    precision: the float weights' dtype, "fp32", "bf16", "fp16" or "auto" (bf16 on AMX CPUs,
        else fp32); quantized GGUF weights are dequantized to it.
    quantize: None/"none" (float weights), "int8", "int4" (group_size 32, 64 or 128; a GGUF's
        own Q4_0/Q4_1 blocks are used as they are), "fp16" (FBGEMM) or "auto": int4 decode
        weights when the file's matrices are Q4_0/Q4_1 (`auto_quantization`), with the float
        weights kept for prefill (long prompts); float weights otherwise.
    The model comes back in eval mode. handle.tokenizer is None when the checkpoint carries
    none (or tokenizer=False).
    """
    dtype = resolve_precision(precision)
    quant = quantize_name(quantize)
    path = resolve_model_path(spec)
    g: GGUFFile | None = None
    if path.is_file() and _is_gguf(path):
        g = read_gguf(path)
    elif not path.is_dir():
        raise LmforgeError(
            f"{path}: not a model (expected a GGUF file or a directory with config.json)"
        )
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The tokenizer is pure Python and the weights mostly torch kernels that release the
        # GIL: building both at once hides the tokenizer's time (~0.2 s of a cold start).
        tok_job = (
            pool.submit(_ready_tokenizer, path, g.metadata if g else None) if tokenizer else None
        )
        model = gguf_to_model(g, dtype) if g is not None else load_hf_model(path, dtype)
        model.eval()
        float_prefill = quant == "auto"
        if quant == "auto":
            quant = "int4" if g is not None and is_int4_file(g) else None
        if quant is not None:
            from lmforge.model.quantize import quantize_model

            exact = None
            if g is not None and quant == "int4":  # the model was built from g just now: no check
                exact = gguf_exact_layers(model, g, check=False)
            quantize_model(
                model, quant, group_size=group_size, exact=exact, float_prefill=float_prefill
            )
        tok = tok_job.result() if tok_job is not None else None
    return ModelHandle(
        name=str(spec),
        path=path,
        config=model.config,
        model=model,
        tokenizer=tok,
        chat_template=getattr(tok, "chat_template", None),
        precision=dtype,
        quantization=quant,
    )


def auto_quantization(spec: str | Path) -> str | None:
    """What quantize="auto" picks for a checkpoint: "int4" for a GGUF file whose block matrices
    are Q4_0/Q4_1, else None (float weights).

    Decode reads every weight once per token, so fewer weight bytes decode faster (measured in
    benchmarks/generate.py: on a 2-core AVX2 host int4 decodes 92.2 tok/s at batch 1, int8
    90.2, fp16 39.7, fp32 16.5). A GGUF's own Q4_0/Q4_1 blocks are used as they are, so int4
    costs nothing over the file's weights; the output head is stored in int8 (no measurable
    perplexity change on SmolLM2, see `quantize_model`'s `head`).
    """
    path = resolve_model_path(spec)
    if not path.is_file() or not _is_gguf(path):
        return None
    return "int4" if is_int4_file(read_gguf(path)) else None


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError as e:
        raise LmforgeError(f"{path}: cannot read ({e.strerror})") from e


def _ready_tokenizer(path: Path, gguf_metadata: dict[str, Any] | None = None) -> Any:
    """The checkpoint's tokenizer (or None) with its fast encoder already built."""
    tok = _load_tokenizer(path, gguf_metadata)
    if tok is not None:
        tok.encode("warm up")  # builds the tiktoken backend now, off the model's critical path
    return tok


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
