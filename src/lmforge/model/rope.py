"""Rotary position embeddings (RoPE), in the "rotate half" convention of Hugging Face.

A head vector x of width D is split into halves (x1, x2) = (x[:D/2], x[D/2:]); pair i is
(x1[i], x2[i]) and is rotated by the angle pos * inv_freq[i]. llama.cpp and Meta's original
checkpoints pair neighbours (x[2i], x[2i+1]) instead; the GGUF reader undoes that permutation of
the q/k weights, so one convention serves every checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def rope_inv_freq(
    head_dim: int, theta: float, scaling: dict[str, Any] | None = None
) -> torch.Tensor:
    """Per-pair angular frequencies [head_dim/2], with optional linear or llama3 scaling."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "default":
        return inv_freq
    if kind == "freq_factors":  # llama.cpp's rope_freqs tensor: one divisor per pair
        return inv_freq / torch.tensor(scaling["factors"], dtype=torch.float32)
    factor = float(scaling["factor"])
    if kind == "linear":  # positions are divided by factor, i.e. frequencies are
        return inv_freq / factor
    if kind == "llama3":
        # Llama 3.1: keep high frequencies, divide low ones by factor, blend in between.
        low = float(scaling.get("low_freq_factor", 1.0))
        high = float(scaling.get("high_freq_factor", 4.0))
        old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
        low_freq_wavelen, high_freq_wavelen = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return torch.where(is_medium, smoothed, scaled)
    raise ValueError(f"unsupported rope scaling {kind!r}")


def rope_tables(
    head_dim: int, max_seq_len: int, theta: float, scaling: dict[str, Any] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [max_seq_len, head_dim] (fp32), duplicated over the two halves."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)  # [S, D/2]
    angles = torch.cat([angles, angles], dim=-1)  # [S, D]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, H, D] by cos/sin [B or 1, T, 1, D]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)  # (x1, x2) -> (-x2, x1)
    return x * cos + rotated * sin


def interleaved_to_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the output rows of a q/k projection from interleaved pairs to rotate-half.

    llama.cpp's converter permutes HF's q/k rows per head with
    ``w.reshape(H, 2, D/2, ...).swapaxes(1, 2)``; this is the inverse. Works for weights
    [H*D, in] and biases [H*D].
    """
    rest = w.shape[1:]
    head_dim = w.shape[0] // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, *rest).transpose(1, 2).reshape(w.shape)


def half_to_interleaved(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of `interleaved_to_half` (what llama.cpp's converter does when writing GGUF)."""
    rest = w.shape[1:]
    head_dim = w.shape[0] // n_heads
    return w.reshape(n_heads, 2, head_dim // 2, *rest).transpose(1, 2).reshape(w.shape)
