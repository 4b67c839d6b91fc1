"""Weight-only quantization: int8 per output channel, int4 group-wise and fp16, on PyTorch's CPU
kernels.

    from lmforge.model.quantize import quantize_model
    quantize_model(model, "int8")                  # every nn.Linear -> Int8Linear, in place
    quantize_model(model, "fp16")                  # -> Fp16Linear (FBGEMM's packed fp16 GEMM)
    quantize_model(model, "int4", group_size=32)   # -> Int4Linear (groups of 32/64/128)
    quantize_model(model, "int4", gguf="SmolLM2.Q4_1.gguf")  # repack the file's Q4_0/Q4_1
                                                   # blocks as they are: no second rounding

Formats (what the kernels expect):
- int8: w[n, k] = scale[n] * q[n, k], q in [-127, 127]; `aten._weight_int8pack_mm(x, q, scale)`.
- int4: w[n, k] = (q[n, k] - 8) * scale[n, g] + zero[n, g] with g = k // group_size and
  q in [0, 15]; `aten._convert_weight_to_int4pack_for_cpu` packs q and
  `aten._weight_int4pack_mm_for_cpu(x, packed, group_size, scales_and_zeros[K/g, N, 2])` runs.
  This is the "tinygemm" zero-point convention (the zero is a float offset, centred on q = 8).

GGUF blocks map onto int4 without rounding again:
- Q4_0 (w = d * (q - 8)):      scale = d, zero = 0
- Q4_1 (w = d * q + m):        scale = d, zero = m + 8 d   (so (q - 8) d + m + 8 d = d q + m)
- Q8_0 (w = d * q, 32-blocks): int8pack has one scale per output row, so Q8_0 cannot be repacked
  exactly; its (exactly dequantized) float weights are quantized per channel like any other.

Activations: the CPU kernels only have vectorised paths for bfloat16/float16 activations (with
float32 they run an order of magnitude slower), so quantized layers compute in `act_dtype`
(bfloat16 by default) and return the caller's dtype. With act_dtype=float32 the GGUF repack is
exact up to float32 rounding (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import LmforgeError

MODES = ("int8", "int4", "fp16")
HEAD_MODES = ("fp16", "int8", "int4")  # ways to store the output head in int4 mode
GROUP_SIZES = (32, 64, 128)
_INNER_K_TILES = 2  # int4pack tiling of K; 2 works for every K that is a multiple of 32


# -- int8 -------------------------------------------------------------------------------------


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: weight [N, K] -> (q int8 [N, K], scale float32 [N])."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """y = x @ (scale * q).T + bias with int8 weights read by `_weight_int8pack_mm`."""

    def __init__(
        self,
        q: torch.Tensor,  # int8 [N, K]
        scale: torch.Tensor,  # [N]
        bias: torch.Tensor | None = None,
        act_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.act_dtype = act_dtype
        # the kernel's vector loop reads K in steps of 8 (other K crash it): pad with zeros
        q = F.pad(q, (0, -self.in_features % 8))
        self.padded_in = q.shape[1]
        self.register_buffer("weight_int8", q.contiguous())
        self.register_buffer("scale", scale.to(act_dtype).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, act_dtype: torch.dtype = torch.bfloat16) -> Int8Linear:
        q, scale = quantize_int8(linear.weight)
        return cls(q, scale, linear.bias, act_dtype)

    def dequantize(self) -> torch.Tensor:
        w = self.weight_int8.float() * self.scale.float()[:, None]
        return w[:, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., K] -> [..., N]
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(self.act_dtype)
        if self.padded_in != self.in_features:
            x2 = F.pad(x2, (0, self.padded_in - self.in_features))
        y = torch.ops.aten._weight_int8pack_mm(x2, self.weight_int8, self.scale)
        y = y.to(x.dtype).reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


# -- int4 -------------------------------------------------------------------------------------


def quantize_int4(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric min/max int4 per group along K.

    weight [N, K] (K a multiple of group_size) -> q int32 [N, K] in [0, 15],
    scale [N, K/g], zero [N, K/g] in the kernel's convention w = (q - 8) * scale + zero.
    """
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group_size, group_size)
    lo, hi = w.amin(dim=-1), w.amax(dim=-1)  # [N, K/g]
    scale = ((hi - lo) / 15).clamp(min=1e-12)
    q = torch.round((w - lo[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
    zero = lo + 8 * scale
    return q.reshape(n, k), scale, zero


class Int4Linear(nn.Module):
    """y = x @ W.T + bias with group-wise int4 weights read by `_weight_int4pack_mm_for_cpu`."""

    def __init__(
        self,
        q: torch.Tensor,  # int32 [N, Kp] in [0, 15], Kp = K padded to a multiple of group_size
        scale: torch.Tensor,  # [N, Kp/g]
        zero: torch.Tensor,  # [N, Kp/g]
        group_size: int,
        in_features: int,
        bias: torch.Tensor | None = None,
        act_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.out_features, self.padded_in = q.shape
        self.in_features, self.group_size, self.act_dtype = in_features, group_size, act_dtype
        # the packing wants N to be a multiple of 16: pad with zero rows, sliced off in forward
        pad_n = -self.out_features % 16
        if pad_n:
            q = F.pad(q, (0, 0, 0, pad_n), value=8)
            scale, zero = F.pad(scale, (0, 0, 0, pad_n)), F.pad(zero, (0, 0, 0, pad_n))
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            q.to(torch.int32).contiguous(), _INNER_K_TILES
        )
        self.register_buffer("weight_int4", packed)
        # [K/g, N, 2]: what the kernel wants
        sz = torch.stack([scale.float().t(), zero.float().t()], dim=-1).to(act_dtype).contiguous()
        self.register_buffer("scales_and_zeros", sz)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int = 32, act_dtype: torch.dtype = torch.bfloat16
    ) -> Int4Linear:
        w = linear.weight.detach().float()
        k = w.shape[1]
        w = F.pad(w, (0, -k % group_size))  # zero columns meet zero activations
        q, scale, zero = quantize_int4(w, group_size)
        return cls(q, scale, zero, group_size, k, linear.bias, act_dtype)

    def dequantize(self) -> torch.Tensor:
        """The float weight [N, K] the kernel computes with (recovered through the kernel)."""
        eye = torch.eye(self.padded_in, dtype=torch.float32)
        sz = self.scales_and_zeros.float()
        w_t = torch.ops.aten._weight_int4pack_mm_for_cpu(eye, self.weight_int4, self.group_size, sz)
        return w_t.t()[: self.out_features, : self.in_features].contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., K] -> [..., N]
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(self.act_dtype)
        if self.padded_in != self.in_features:
            x2 = F.pad(x2, (0, self.padded_in - self.in_features))
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x2, self.weight_int4, self.group_size, self.scales_and_zeros
        )
        if y.shape[-1] != self.out_features:
            y = y[:, : self.out_features]
        y = y.to(x.dtype).reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 group_size={self.group_size}"
        )


# -- fp16 (FBGEMM) ----------------------------------------------------------------------------


def fp16_kernel_available() -> bool:
    """True when PyTorch was built with FBGEMM (x86), which has the packed fp16 GEMM."""
    return "fbgemm" in torch.backends.quantized.supported_engines


class Fp16Linear(nn.Module):
    """y = x @ W.T + bias with W stored as fp16 in FBGEMM's packed layout; x stays float32.

    `quantized::linear_dynamic_fp16` converts fp16 weights to fp32 in registers (AVX2 F16C)
    and multiplies in fp32, so it is as accurate as fp32 weights rounded to fp16 (relative
    error ~2e-4) while reading half the bytes. On an AVX2-only CPU, where unpacking int4/int8
    is compute-bound, it is the fastest kernel for SmolLM2's 49152 x 576 head (~1.6x int8,
    ~2.5x fp32; docs/generate.md) and for a single cache-resident layer (576 -> 1536: 89 us vs
    156 us int4). A whole model in fp16 reads 4x int4's bytes from memory, though, and decodes
    slower at batch 1 (19.5 vs 23.0 tok/s on SmolLM2), faster at batch 8 (86 vs 78).

    The packed weight is an opaque object, not a tensor: it is not in the state dict (quantized
    models are for inference, not for saving).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        b = None if bias is None else bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack_fp16(weight.detach().float(), b)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Fp16Linear:
        return cls(linear.weight, linear.bias)

    def dequantize(self) -> torch.Tensor:
        return torch.ops.quantized.linear_unpack_fp16(self.packed)[0]

    def weight_bytes(self) -> int:
        return 2 * self.out_features * self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., K] -> [..., N]
        y = torch.ops.quantized.linear_dynamic_fp16(x.float(), self.packed)
        return y if y.dtype == x.dtype else y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp16"


# -- float for prefill, quantized for decode --------------------------------------------------


class HybridLinear(nn.Module):
    """Float weights for many rows at once (prefill), quantized weights for few (decode).

    Decode multiplies one row per sequence by every weight, so it is bound by weight bytes and
    the int4/int8 kernels win; prefill multiplies hundreds of rows, where the float (and, on AMX,
    bf16) matmul is faster than the quantized kernels. Both hold the same weights when the int4
    layer is an exact GGUF repack, so the switch does not change the model.
    """

    def __init__(self, full: nn.Linear, quantized: nn.Module, min_rows: int = 16) -> None:
        super().__init__()
        self.full, self.quantized, self.min_rows = full, quantized, min_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        return self.full(x) if rows >= self.min_rows else self.quantized(x)

    def dequantize(self) -> torch.Tensor:
        return self.quantized.dequantize()


# -- whole models -----------------------------------------------------------------------------


def quantize_model(
    model: nn.Module,
    mode: str = "int8",
    *,
    group_size: int = 32,
    act_dtype: torch.dtype = torch.bfloat16,
    gguf: str | Path | Any | None = None,
    skip: tuple[str, ...] = (),
    head: str | None = "auto",
    float_prefill: bool = False,
) -> nn.Module:
    """Replace every nn.Linear of `model` (in place) with an int8, int4 or fp16 weight-only layer.

    mode: "int8" (per output channel), "int4" (group-wise, group_size 32, 64 or 128) or "fp16"
        (FBGEMM's packed fp16 weights: half the bytes of fp32, at fp16 rounding; `Fp16Linear`).
    gguf: path (or `read_gguf` result) of the GGUF file the model was loaded from; with int4,
        layers stored there as Q4_0/Q4_1 blocks of 32 are repacked exactly instead of being
        quantized a second time (the other layers are quantized from their float weights).
    skip: names of modules to leave in floating point (e.g. ("output",)).
    head: with int4, how to store the output head ("output"): "auto" (default: "fp16" where
        FBGEMM exists, else "int8"), "fp16" (`Fp16Linear`), "int8", "int4", or None (floating
        point). The head is the largest matrix and the most sensitive one: on SmolLM2, int4
        there costs +6.6% perplexity, int8 +0.5%, fp16 nothing; and fp16 is also the fastest
        head kernel on AVX2 (docs/generate.md).
    float_prefill: keep the float weights too and use them when a call has 16 rows or more
        (prefill); decode steps use the quantized weights (`HybridLinear`). Costs the memory of
        both; speeds up long prompts where the quantized kernels are slower than float matmuls.
    Returns the model, for chaining.
    """
    if mode not in MODES:
        raise LmforgeError(f"unknown quantization {mode!r} (choose from {', '.join(MODES)})")
    if group_size not in GROUP_SIZES:
        raise LmforgeError(f"int4 group size must be one of {GROUP_SIZES}, got {group_size}")
    if mode == "fp16" and not fp16_kernel_available():
        raise LmforgeError("fp16 weights need PyTorch built with FBGEMM (x86); use int8 or int4")
    exact: dict[str, Int4Linear] = {}
    if gguf is not None and mode == "int4" and group_size == 32:
        exact = gguf_int4_layers(model, gguf, act_dtype)
    kept_float = {id(m.full) for m in model.modules() if isinstance(m, HybridLinear)}
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name in skip or id(module) in kept_float:
            continue
        layer_mode = mode
        if mode == "int4" and name == "output":
            if head is None:
                continue
            if head == "auto":
                head = "fp16" if fp16_kernel_available() else "int8"
            if head not in HEAD_MODES:
                raise LmforgeError(
                    f"unknown head quantization {head!r} (choose from {', '.join(HEAD_MODES)})"
                )
            layer_mode = head
        if name in exact and layer_mode == "int4":
            new: nn.Module = exact[name]
        elif layer_mode == "fp16":
            new = Fp16Linear.from_linear(module)
        elif layer_mode == "int8":
            new = Int8Linear.from_linear(module, act_dtype)
        else:
            new = Int4Linear.from_linear(module, group_size, act_dtype)
        if float_prefill:
            new = HybridLinear(module, new)
        _set_module(model, name, new)
    model.quantization = mode  # type: ignore[assignment]  # for reports and benchmarks
    return model


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


# -- GGUF repacking ---------------------------------------------------------------------------


def gguf_blocks_to_int4(
    tensor: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_0/Q4_1 GGUF tensor -> (q int32 [N, K], scale [N, K/32], zero [N, K/32]), exactly."""
    from gguf import GGMLQuantizationType as Q

    if tensor.qtype not in (Q.Q4_0, Q.Q4_1):
        raise LmforgeError(f"tensor {tensor.name!r} is {tensor.qtype.name}, not Q4_0/Q4_1")
    rows = tensor.data.reshape(-1, tensor.data.shape[-1])
    n = rows.shape[0]
    blocks = torch.from_numpy(rows.copy()).view(n, -1, tensor.type_size)  # [N, nb, bytes]
    d = blocks[..., 0:2].contiguous().view(torch.float16).float().squeeze(-1)  # [N, nb]
    start = 2 if tensor.qtype == Q.Q4_0 else 4
    qs = blocks[..., start:]  # [N, nb, 16]: weight j in the low nibble, j + 16 in the high one
    q = torch.cat([qs & 0xF, qs >> 4], dim=-1).to(torch.int32).reshape(n, -1)  # [N, K]
    if tensor.qtype == Q.Q4_0:
        zero = torch.zeros_like(d)
    else:
        m = blocks[..., 2:4].contiguous().view(torch.float16).float().squeeze(-1)
        zero = m + 8 * d
    return q, d, zero


def _gguf_sources(model: nn.Module, g: Any) -> dict[str, tuple[list[tuple[str, int]], bool]]:
    """Our linear layer name -> ([(gguf tensor, n_heads to un-permute or 0)], is_llama).

    Mirrors lmforge.checkpoint.gguf_model.state_dict_from_gguf for the Llama family.
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


def gguf_int4_layers(
    model: nn.Module, gguf: str | Path | Any, act_dtype: torch.dtype = torch.bfloat16
) -> dict[str, Int4Linear]:
    """Int4 layers built straight from a GGUF file's Q4_0/Q4_1 blocks, for the layers of
    `model` whose weights equal those blocks (checked, so a fine-tuned model is never
    silently replaced by the file's weights)."""
    from lmforge.checkpoint.gguf import read_gguf
    from lmforge.model.rope import interleaved_to_half

    g = read_gguf(gguf) if isinstance(gguf, (str, Path)) else gguf
    layers: dict[str, Int4Linear] = {}
    for name, sources in _gguf_sources(model, g).items():
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            continue
        if not isinstance(linear, nn.Linear) or linear.bias is not None:
            continue
        parts = []
        for tensor_name, heads in sources:
            t = g.tensors.get(tensor_name)
            if t is None or t.qtype.name not in ("Q4_0", "Q4_1"):
                break
            q, scale, zero = gguf_blocks_to_int4(t)
            if heads:  # the same row permutation the loader applied to the float weights
                q, scale, zero = (interleaved_to_half(x, heads) for x in (q, scale, zero))
            parts.append((q, scale, zero))
        else:
            q, scale, zero = (torch.cat(x) for x in zip(*parts, strict=True))
            w = (q.float() - 8) * scale.repeat_interleave(32, 1) + zero.repeat_interleave(32, 1)
            # a bf16/fp16 model holds the file's weights rounded: compare at its precision
            rtol = max(1e-3, 2 * torch.finfo(linear.weight.dtype).eps)
            if w.shape != linear.weight.shape or not torch.allclose(
                w, linear.weight.detach().float(), rtol=rtol, atol=1e-6
            ):
                continue  # the model's weights are not the file's: quantize them normally
            layers[name] = Int4Linear(q, scale, zero, 32, w.shape[1], None, act_dtype)
    return layers


def model_weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (what a decode step reads, roughly)."""
    seen: set[int] = set()
    # packed fp16 weights are opaque objects, not parameters or buffers: count them apart
    total = sum(m.weight_bytes() for m in model.modules() if isinstance(m, Fp16Linear))
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen or t is None:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total
