"""Weight-only quantization: int8 and int4 in GGUF's blocks of 32, and fp16, for CPU decoding.

    from lmforge.model.quantize import quantize_model
    quantize_model(model, "int8")                  # every nn.Linear -> Int8Linear, in place
    quantize_model(model, "fp16")                  # -> Fp16Linear (FBGEMM's packed fp16 GEMM)
    quantize_model(model, "int4", group_size=32)   # -> Int4Linear (groups of 32/64/128)
    quantize_model(model, "int4", exact=layers)    # layers repacked from a file's blocks
                                                   # (lmforge.checkpoint.gguf_quant): no second rounding

Formats (the bytes are GGUF's, so a GGUF model's blocks are used as they are):
- int8 = Q8_0: per block of 32 weights along K, w = d * q with q in [-127, 127], d fp16.
- int4 = Q4_1: per block of 32, w = d * q + m with q in [0, 15], d and m fp16. Groups of 64 or
  128 share one (d, m), repeated in each of their blocks.
- Q4_0 (w = d * (q - 8)) is Q4_1 with m = -8 d, exactly.

Kernels: lmforge's own AVX2 kernels (`lmforge.kernels`) round the activations to int16 per block
of 32 (relative error ~1e-5) and multiply in integers, 1.5-2x PyTorch's int4 kernel on this
AVX2 CPU (docs/generate.md). Where they cannot be built (no compiler, no AVX2), the layers fall back to
PyTorch's kernels: `aten._weight_int4pack_mm_for_cpu` for int4 (the same weights, repacked to its
"tinygemm" layout) and `aten._weight_int8pack_mm` for int8 (one scale per output channel,
quantized again from the blocks). Those only have fast paths for bfloat16/float16 activations,
so they compute in `act_dtype` (bfloat16 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmforge import kernels
from lmforge.errors import LmforgeError

MODES = ("int8", "int4", "fp16")
HEAD_MODES = ("fp16", "int8", "int4")  # ways to store the output head in int4 mode
GROUP_SIZES = (32, 64, 128)
BLOCK = 32  # weights per GGUF block
_INNER_K_TILES = 2  # tinygemm int4pack tiling of K; 2 works for every K that is a multiple of 32


def _fp16(x: torch.Tensor) -> torch.Tensor:
    """x rounded to float16 and back: block scales are stored as fp16."""
    return x.to(torch.float16).float()


def _pad_k(w: torch.Tensor, multiple: int) -> torch.Tensor:
    """w [N, K] with zero columns up to a multiple of `multiple`: they meet zero activations."""
    return F.pad(w, (0, -w.shape[1] % multiple))


def _pad_x(x2: torch.Tensor, k: int) -> torch.Tensor:
    return x2 if x2.shape[1] == k else F.pad(x2, (0, k - x2.shape[1]))


# -- int8 -------------------------------------------------------------------------------------


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per block of 32 along K, as GGUF's Q8_0.

    weight [N, K] (K a multiple of 32) -> (q int8 [N, K] in [-127, 127], d [N, K/32] fp16 values).
    Re-quantizing a dequantized Q8_0 tensor gives back its q and d exactly.
    """
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // BLOCK, BLOCK)
    d = _fp16(w.abs().amax(dim=-1) / 127)  # [N, K/32]
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.round(w * inv[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(n, k), d


class Int8Linear(nn.Module):
    """y = x @ W.T + bias with int8 weights in Q8_0 blocks (`lmforge.kernels.q8_0_linear`)."""

    def __init__(
        self,
        q: torch.Tensor,  # int8 [N, Kp], Kp = K padded to a multiple of 32
        d: torch.Tensor,  # [N, Kp/32]
        in_features: int,
        bias: torch.Tensor | None = None,
        act_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.out_features, self.padded_in = q.shape
        self.in_features, self.act_dtype = in_features, act_dtype
        self.native = kernels.available()
        if self.native:
            self.register_buffer("qs", q.to(torch.int8).contiguous())
            self.register_buffer("d", d.to(torch.float16).contiguous())
        else:  # PyTorch's kernel: one scale per output channel, quantized from the blocks
            w = q.float() * d.repeat_interleave(BLOCK, 1)
            scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
            q_row = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
            self.register_buffer("weight_int8", q_row.contiguous())
            self.register_buffer("scale", scale.to(act_dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, act_dtype: torch.dtype = torch.bfloat16) -> Int8Linear:
        q, d = quantize_int8(_pad_k(linear.weight.detach().float(), BLOCK))
        return cls(q, d, linear.in_features, linear.bias, act_dtype)

    def dequantize(self) -> torch.Tensor:
        """The float weight [N, K] the kernel computes with."""
        if self.native:
            w = self.qs.float() * self.d.float().repeat_interleave(BLOCK, 1)
        else:
            w = self.weight_int8.float() * self.scale.float()[:, None]
        return w[:, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., K] -> [..., N]
        if self.native:  # one call: padding, dtypes and bias are handled inside
            return kernels.int8_linear(x, self.qs, self.d, self.bias)
        shape = x.shape
        x2 = _pad_x(x.reshape(-1, shape[-1]).to(self.act_dtype), self.padded_in)
        y = torch.ops.aten._weight_int8pack_mm(x2, self.weight_int8, self.scale)
        y = y.to(x.dtype).reshape(*shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 (Q8_0)"


# -- int4 -------------------------------------------------------------------------------------


def quantize_int4(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric min/max int4 per group along K, in Q4_1's convention w = d * q + m.

    weight [N, K] (K a multiple of group_size) -> q int32 [N, K] in [0, 15], d [N, K/g] and
    m [N, K/g], both fp16 values (what the blocks store; q is rounded against them).
    """
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group_size, group_size)
    lo, hi = w.amin(dim=-1), w.amax(dim=-1)  # [N, K/g]
    d, m = _fp16((hi - lo) / 15), _fp16(lo)
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.round((w - m[..., None]) * inv[..., None]).clamp(0, 15).to(torch.int32)
    return q.reshape(n, k), d, m


class Int4Linear(nn.Module):
    """y = x @ W.T + bias with int4 weights in Q4_1 blocks (`lmforge.kernels.q4_1_linear`)."""

    def __init__(
        self,
        q: torch.Tensor,  # int32 or uint8 [N, Kp] in [0, 15], Kp = K padded to group_size
        d: torch.Tensor,  # [N, Kp/g]
        m: torch.Tensor,  # [N, Kp/g]: w = d * q + m
        group_size: int,
        in_features: int,
        bias: torch.Tensor | None = None,
        act_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.out_features, self.padded_in = q.shape
        self.in_features, self.group_size, self.act_dtype = in_features, group_size, act_dtype
        self.native = kernels.available()
        if self.native:
            per_block = group_size // BLOCK  # a group of 64 or 128 repeats its (d, m)
            d, m = d.repeat_interleave(per_block, 1), m.repeat_interleave(per_block, 1)
            if q.shape[1] % 64:  # the kernel reads blocks in pairs: one more, of zeros
                q, d, m = F.pad(q, (0, 32)), F.pad(d, (0, 1)), F.pad(m, (0, 1))
            self.register_buffer("qs", kernels.pack_int4(q))
            self.register_buffer("d", d.to(torch.float16).contiguous())
            self.register_buffer("m", m.to(torch.float16).contiguous())
        else:
            self._pack_tinygemm(q, d, m)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def _pack_tinygemm(self, q: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> None:
        """PyTorch's layout: w = (q - 8) * scale + zero, so scale = d and zero = m + 8 d."""
        zero = m + 8 * d
        pad_n = -self.out_features % 16  # it wants N a multiple of 16: zero rows, sliced off
        if pad_n:
            q = F.pad(q, (0, 0, 0, pad_n), value=8)
            d, zero = F.pad(d, (0, 0, 0, pad_n)), F.pad(zero, (0, 0, 0, pad_n))
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            q.to(torch.int32).contiguous(), _INNER_K_TILES
        )
        self.register_buffer("weight_int4", packed)
        sz = torch.stack([d.float().t(), zero.float().t()], dim=-1)  # [K/g, N, 2]
        self.register_buffer("scales_and_zeros", sz.to(self.act_dtype).contiguous())

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int = 32, act_dtype: torch.dtype = torch.bfloat16
    ) -> Int4Linear:
        q, d, m = quantize_int4(_pad_k(linear.weight.detach().float(), group_size), group_size)
        return cls(q, d, m, group_size, linear.in_features, linear.bias, act_dtype)

    def dequantize(self) -> torch.Tensor:
        """The float weight [N, K] the kernel computes with."""
        if self.native:
            d, m = (t.float().repeat_interleave(BLOCK, 1) for t in (self.d, self.m))
            w = kernels.unpack_int4(self.qs).float() * d + m
        else:  # recovered through the kernel itself
            eye = torch.eye(self.padded_in, dtype=torch.float32)
            sz = self.scales_and_zeros.float()
            w = torch.ops.aten._weight_int4pack_mm_for_cpu(
                eye, self.weight_int4, self.group_size, sz
            ).t()
        return w[: self.out_features, : self.in_features].contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., K] -> [..., N]
        if self.native:  # one call: padding, dtypes and bias are handled inside
            return kernels.int4_linear(x, self.qs, self.d, self.m, self.bias)
        shape = x.shape
        x2 = _pad_x(x.reshape(-1, shape[-1]).to(self.act_dtype), self.padded_in)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x2, self.weight_int4, self.group_size, self.scales_and_zeros
        )[:, : self.out_features]
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
    error ~2e-4) while reading half the bytes of fp32. It is int4 mode's head where lmforge's
    kernels can't be built (the fastest of PyTorch's kernels for it on AVX2). A whole model in
    fp16 reads 4x int4's bytes and decodes at 39.7 tok/s on SmolLM2 vs 92.2 for int4.

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


def default_head() -> str:
    """How int4 mode stores the output head unless told: int8 (Q8_0) on lmforge's kernels, else
    fp16 where FBGEMM exists (the fastest of PyTorch's kernels for it on AVX2), else int8."""
    if kernels.available():
        return "int8"
    return "fp16" if fp16_kernel_available() else "int8"


def quantize_model(
    model: nn.Module,
    mode: str = "int8",
    *,
    group_size: int = 32,
    act_dtype: torch.dtype = torch.bfloat16,
    exact: dict[str, Int4Linear | Int8Linear] | None = None,
    skip: tuple[str, ...] = (),
    head: str | None = "auto",
    float_prefill: bool = False,
) -> nn.Module:
    """Replace every nn.Linear of `model` (in place) with an int8, int4 or fp16 weight-only layer.

    mode: "int8" (blocks of 32, Q8_0), "int4" (group-wise, group_size 32, 64 or 128, Q4_1's
        convention) or "fp16" (FBGEMM's packed fp16 weights; `Fp16Linear`).
    exact: ready int4/int8 layers by module name, used instead of quantizing those layers a
        second time when their kind is the one asked for: the file's own Q4_0/Q4_1/Q8_0 blocks,
        repacked by `lmforge.checkpoint.gguf_quant.gguf_exact_layers` (the others are
        quantized from their float weights).
    skip: names of modules to leave in floating point (e.g. ("output",)).
    head: with int4, how to store the output head ("output"): "auto" (default: `default_head()`,
        int8 on lmforge's kernels), "fp16" (`Fp16Linear`), "int8", "int4", or None (floating
        point). The head is the largest matrix and the most sensitive one: on SmolLM2, int4
        there costs +5.8% perplexity, int8 and fp16 nothing measurable (docs/generate.md).
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
    exact = exact or {}
    kept_float = {id(m.full) for m in model.modules() if isinstance(m, HybridLinear)}
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name in skip or id(module) in kept_float:
            continue
        layer_mode = mode
        if mode == "int4" and name == "output":
            if head is None:
                continue
            if head == "auto":
                head = default_head()
            if head not in HEAD_MODES:
                raise LmforgeError(
                    f"unknown head quantization {head!r} (choose from {', '.join(HEAD_MODES)})"
                )
            layer_mode = head
        ready = exact.get(name)
        if (
            isinstance(ready, Int4Linear)
            and layer_mode == "int4"
            and ready.group_size == group_size
        ) or (isinstance(ready, Int8Linear) and layer_mode == "int8"):
            new: nn.Module = ready
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
