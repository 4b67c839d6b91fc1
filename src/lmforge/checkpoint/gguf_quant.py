"""GGUF Q4_0/Q4_1/Q8_0 blocks -> lmforge int4/int8 layers, exactly (no second rounding).

The bundled model's matrices are stored as Q4_1 blocks of 32, the very layout of
`lmforge.model.quantize.Int4Linear`, and its tied embedding/head as Q8_0, the layout of
`Int8Linear`; so quantized decoding can use the file's blocks as they are:

    g = read_gguf(path)
    model = gguf_to_model(g)
    quantize_model(model, "int4", exact=gguf_exact_layers(model, g))

This lives with the file formats (not in the model room): it knows GGUF's tensor names, its
block bytes and llama.cpp's q/k row permutation.
"""

from __future__ import annotations

import torch
from gguf import GGMLQuantizationType as Q
from torch import nn

from lmforge.checkpoint.gguf import GGUFFile, GGUFTensor
from lmforge.errors import LmforgeError
from lmforge.model.quantize import BLOCK, Int4Linear, Int8Linear
from lmforge.model.rope import interleaved_to_half

INT4_QTYPES = (Q.Q4_0, Q.Q4_1)


def gguf_blocks_to_int4(tensor: GGUFTensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_0/Q4_1 GGUF tensor -> (q uint8 [N, K] in 0..15, d [N, K/32], m [N, K/32]) with
    w = d * q + m, exactly (Q4_0's w = d * (q - 8) is m = -8 d). q stays one byte a weight:
    this runs for every matrix of a model at start-up."""
    if tensor.qtype not in INT4_QTYPES:
        raise LmforgeError(f"tensor {tensor.name!r} is {tensor.qtype.name}, not Q4_0/Q4_1")
    rows = tensor.data.reshape(-1, tensor.data.shape[-1])
    n = rows.shape[0]
    blocks = torch.from_numpy(rows.copy()).view(n, -1, tensor.type_size)  # [N, nb, bytes]
    d = blocks[..., 0:2].contiguous().view(torch.float16).float().squeeze(-1)  # [N, nb]
    start = 2 if tensor.qtype == Q.Q4_0 else 4
    qs = blocks[..., start:]  # [N, nb, 16]: weight j in the low nibble, j + 16 in the high one
    q = torch.cat([qs & 0xF, qs >> 4], dim=-1).reshape(n, -1)  # [N, K] uint8
    if tensor.qtype == Q.Q4_0:
        m = -8 * d
    else:
        m = blocks[..., 2:4].contiguous().view(torch.float16).float().squeeze(-1)
    return q, d, m


def gguf_blocks_to_int8(tensor: GGUFTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0 GGUF tensor -> (q int8 [N, K], d [N, K/32]) with w = d * q, as `quantize_int8`."""
    if tensor.qtype != Q.Q8_0:
        raise LmforgeError(f"tensor {tensor.name!r} is {tensor.qtype.name}, not Q8_0")
    rows = tensor.data.reshape(-1, tensor.data.shape[-1])
    n = rows.shape[0]
    blocks = torch.from_numpy(rows.copy()).view(n, -1, tensor.type_size)  # [N, nb, 34]
    d = blocks[..., 0:2].contiguous().view(torch.float16).squeeze(-1)  # [N, nb]
    q = blocks[..., 2:].contiguous().view(torch.int8).reshape(n, -1)  # [N, K]
    return q, d


def is_int4_file(g: GGUFFile) -> bool:
    """True when the file's block matrices are Q4_0/Q4_1 (judged by the first block's)."""
    t = g.tensors.get("blk.0.ffn_up.weight") or g.tensors.get("blk.0.attn_output.weight")
    return t is not None and t.qtype in INT4_QTYPES


def _gguf_sources(model: nn.Module, g: GGUFFile) -> dict[str, list[tuple[str, int]]]:
    """Our linear layer name -> [(gguf tensor, n_heads to un-permute or 0)], Llama family.

    Mirrors lmforge.checkpoint.gguf_model.state_dict_from_gguf.
    """
    c = model.config
    permuted = g.architecture == "llama"
    out: dict[str, list[tuple[str, int]]] = {}
    if c.pos == "learned" or c.n_experts:
        return {}  # GPT-2 / MoE layouts: quantized from float weights instead
    for i in range(c.n_layers):
        b, p = f"blk.{i}.", f"layers.{i}."
        out[p + "attention.wqkv"] = [
            (b + "attn_q.weight", c.n_heads if permuted else 0),
            (b + "attn_k.weight", c.n_kv_heads if permuted else 0),
            (b + "attn_v.weight", 0),
        ]
        out[p + "attention.wo"] = [(b + "attn_output.weight", 0)]
        for ours, theirs in (("w1", "ffn_gate"), ("w3", "ffn_up"), ("w2", "ffn_down")):
            out[p + f"feed_forward.{ours}"] = [(b + theirs + ".weight", 0)]
    out["output"] = [("token_embd.weight" if c.tie_embeddings else "output.weight", 0)]
    return out


def gguf_exact_layers(
    model: nn.Module,
    g: GGUFFile,
    act_dtype: torch.dtype = torch.bfloat16,
    *,
    check: bool = True,
) -> dict[str, Int4Linear | Int8Linear]:
    """Int4 (from Q4_0/Q4_1) and int8 (from Q8_0) layers built straight from a parsed GGUF
    file's blocks, for the layers of `model` whose weights equal those blocks.

    check: compare each layer's weights with the blocks, so a fine-tuned model is never
        silently replaced by the file's weights. `load_model`, which has just built the model
        from this very file, skips it (it is most of the repacking time).
    """
    layers: dict[str, Int4Linear | Int8Linear] = {}
    for name, sources in _gguf_sources(model, g).items():
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            continue
        if not isinstance(linear, nn.Linear) or linear.bias is not None:
            continue
        tensors = [(g.tensors.get(tensor_name), heads) for tensor_name, heads in sources]
        if any(t is None for t, _ in tensors):
            continue
        qtypes = {t.qtype for t, _ in tensors}
        if qtypes <= set(INT4_QTYPES):
            parts = [gguf_blocks_to_int4(t) for t, _ in tensors]
        elif qtypes == {Q.Q8_0}:
            parts = [gguf_blocks_to_int8(t) for t, _ in tensors]
        else:
            continue
        # the same row permutation the loader applied to the float weights
        parts = [
            tuple(interleaved_to_half(x, heads) for x in part) if heads else part
            for part, (_, heads) in zip(parts, tensors, strict=True)
        ]
        arrays = [torch.cat(x) for x in zip(*parts, strict=True)]
        if arrays[0].shape != linear.weight.shape:
            continue
        if len(arrays) == 3:  # int4: q, d, m
            if check and not _same(*arrays, linear.weight):
                continue  # the model's weights are not the file's: quantize them normally
            layers[name] = Int4Linear(*arrays, BLOCK, arrays[0].shape[1], None, act_dtype)
        else:  # int8: q, d
            q, d = arrays
            if check and not _same(
                q, d.float(), torch.zeros_like(d, dtype=torch.float), linear.weight
            ):
                continue
            layers[name] = Int8Linear(q, d, q.shape[1], None, act_dtype)
    return layers


def _same(q: torch.Tensor, d: torch.Tensor, m: torch.Tensor, weight: torch.Tensor) -> bool:
    w = q.float() * d.repeat_interleave(BLOCK, 1) + m.repeat_interleave(BLOCK, 1)
    # a bf16/fp16 model holds the file's weights rounded: compare at its precision
    rtol = max(1e-3, 2 * torch.finfo(weight.dtype).eps)
    return torch.allclose(w, weight.detach().float(), rtol=rtol, atol=1e-6)
