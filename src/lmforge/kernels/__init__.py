"""lmforge's own CPU kernels (blocks.cpp), compiled on first use and cached.

    from lmforge import kernels
    if kernels.available():
        y = kernels.int4_linear(x, kernels.pack_int4(q), d, m)   # w = d * q + m, blocks of 32

The kernels serve decoding on CPUs: int4 and int8 matmuls over weights quantized in blocks of 32
(GGUF's Q4_1 and Q8_0) with AVX2 integer instructions, 1.5-2x PyTorch's int4 kernel here; and
the small per-token steps fused into one call each (RMSNorm; RoPE + KV-cache write + attention),
where eager PyTorch spends its time on per-op overhead; and all the blocks of a decode step in
one call (`decode_layers`; docs/generate.md). They are built with PyTorch's C++ extension loader
(a C++ compiler is needed, and ninja, a dependency; the first build takes under a minute)
into $TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions) and loaded from there afterwards.

Where they cannot be built (no compiler, no AVX2, not x86) `available()` is False, the reason is
logged once, and the quantized layers fall back to PyTorch's kernels. LMFORGE_KERNELS=0 turns
them off.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# blocks.cpp: int4/int8 matmuls; decode.cpp: RMSNorm, one-token attention and whole blocks, fused
SOURCES = [Path(__file__).with_name(name) for name in ("blocks.cpp", "decode.cpp")]
# -fopenmp: at::parallel_for splits the rows over PyTorch's own OpenMP threads (the same
# libgomp PyTorch loaded, so the two never spin against each other)
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"]
EMPTY = torch.empty(0)  # stands for an absent tensor argument (no bias, no RoPE, ...)


@functools.cache
def available() -> bool:
    """True once the kernels are compiled and loaded (compiles them on the first call)."""
    reason = _unsupported_reason()
    if reason is not None:
        log.info("lmforge kernels unavailable (%s); using PyTorch's kernels", reason)
        return False
    try:
        _build()
        return True
    except Exception as e:  # a compiler error is a reason to fall back, not to fail
        reason = f"building the kernels failed: {str(e).strip().splitlines()[-1]}"
    log.warning("lmforge kernels unavailable (%s); using PyTorch's kernels", reason)
    return False


def _unsupported_reason() -> str | None:
    if os.environ.get("LMFORGE_KERNELS", "1") == "0":
        return "LMFORGE_KERNELS=0"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"{platform.machine()} is not x86-64"
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return "the CPU has no AVX2"
    if not _find_ninja():
        return "ninja is not installed"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler"
    return None


def _find_ninja() -> bool:
    """PyTorch's loader runs `ninja` from PATH; the PyPI package's copy counts too."""
    if shutil.which("ninja"):
        return True
    try:
        import ninja
    except ImportError:
        return False
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    return True


def build_directory() -> Path:
    """Where the compiled library is cached: one folder per PyTorch version (its C++ ABI)."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return Path(root) / f"lmforge_kernels-torch{torch.__version__}"


def _build() -> None:
    from torch.utils.cpp_extension import load

    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "lmforge_kernels.so").exists():
        print(
            "lmforge: compiling CPU kernels (once, under a minute) ...", file=sys.stderr, flush=True
        )
    load(
        name="lmforge_kernels",
        sources=[str(p) for p in SOURCES],
        extra_cflags=FLAGS,
        extra_ldflags=["-fopenmp"],
        build_directory=str(folder),
        is_python_module=False,  # the library registers torch.ops.lmforge.* itself
        verbose=False,
    )


def int4_linear(
    x: torch.Tensor,
    qs: torch.Tensor,
    d: torch.Tensor,
    m: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [..., K'] @ W.T + bias -> [..., N] in x's dtype, W = d * q + m per block of 32.

    qs uint8 [N, K/2] from `pack_int4`, d and m fp16 [N, K/32]; K a multiple of 64 and
    K' <= K (the weights' extra columns are zero padding)."""
    return torch.ops.lmforge.int4_linear(x, qs, d, m, bias)


def int8_linear(
    x: torch.Tensor, qs: torch.Tensor, d: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """x [..., K'] @ W.T + bias -> [..., N], W = d * q per block of 32: qs int8 [N, K],
    d fp16 [N, K/32], K a multiple of 32 and K' <= K."""
    return torch.ops.lmforge.int8_linear(x, qs, d, bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """F.rms_norm over the last dimension in one call (float32, no autograd)."""
    return torch.ops.lmforge.rms_norm(x, weight, eps)


def decode_attention(
    qkv: torch.Tensor,
    rope: tuple[torch.Tensor, torch.Tensor] | None,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: int,
    n_heads: int,
    n_kv_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """One new token per row: RoPE on q and k, k and v written to cache slot `pos`, attention
    over slots 0..pos (GQA; `mask` [B|1, ..., >= pos+1] bool hides slots, never `pos` itself).

    qkv [B, 1, (H + 2 KV) * D] (queries, keys, values), rope (cos, sin) [B|1, 1, 1, D] or None,
    caches float32 [B', KV, S_max, D] with B' >= B -> [B, 1, H * D]."""
    cos, sin = rope if rope is not None else (EMPTY, EMPTY)
    return torch.ops.lmforge.decode_attention(
        qkv, cos, sin, k_cache, v_cache, pos, n_heads, n_kv_heads, mask
    )


def decode_layers(
    norms: list[torch.Tensor],
    eps: float,
    linears: list[torch.Tensor],
    k_caches: list[torch.Tensor],
    v_caches: list[torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
) -> torch.ScriptObject:
    """Every Llama-family block of a model, held once for decode steps of one new token per row:

        layers = kernels.decode_layers(norms, eps, linears, k_caches, v_caches, H, KV)
        x = layers.forward(x, cos, sin, pos, mask)   # x [B, 1, C] float32 -> [B, 1, C]

    Per layer: x + attention(rms_norm(x)), then + SwiGLU(rms_norm(.)), writing the layer's
    cache at slot `pos`; cos/sin [1|B, D] (`EMPTY`: no RoPE) and mask [1|B, >= pos + 1] bool or
    None as for `decode_attention`. norms: the attention and feed-forward RMSNorm weights of each
    layer. linears: for each of wqkv, wo, w1 (gate), w3 (up) and w2 (down) of each layer, 4
    tensors: int4 (qs uint8, d, m, bias) or int8 (qs int8, d, -, bias), empty where absent
    (`quantized_linear_args`). k_caches, v_caches: one of each per layer [B, KV, S_max, D]."""
    return torch.classes.lmforge.DecodeLayers(
        norms, eps, linears, k_caches, v_caches, n_heads, n_kv_heads
    )


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """q [N, K] in 0..15 (K a multiple of 64) -> uint8 [N, K/2] in the kernels' pair order.

    Each pair of blocks of 32 shares 32 bytes; byte 8c + 4s + t (c < 4, s < 2, t < 4) holds
    weight 4c + t of the pair's block s in its low nibble and weight 16 + 4c + t in its high one.
    Within a block this is GGUF's nibble order (weight j with j + 16); the 4-byte interleaving
    of the two blocks lets the kernel scale both with one broadcast (blocks.cpp)."""
    n, k = q.shape
    q = q.to(torch.uint8).reshape(n, k // 64, 2, 2, 4, 4)  # [N, pair, s, low/high, c, t]
    packed = q[:, :, :, 0] | (q[:, :, :, 1] << 4)  # [N, pair, s, c, t]
    return packed.permute(0, 1, 3, 2, 4).reshape(n, k // 2).contiguous()


def unpack_int4(qs: torch.Tensor) -> torch.Tensor:
    """The inverse of `pack_int4`: uint8 [N, K/2] -> int32 [N, K] in 0..15."""
    n = qs.shape[0]
    b = qs.reshape(n, -1, 4, 2, 4).permute(0, 1, 3, 2, 4)  # [N, pair, s, c, t]
    return torch.stack([b & 0xF, b >> 4], dim=3).reshape(n, -1).to(torch.int32)
