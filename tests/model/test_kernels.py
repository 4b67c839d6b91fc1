"""lmforge's AVX2 kernels (lmforge.kernels) against a float reference of the same arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmforge import kernels

needs_kernels = pytest.mark.skipif(
    not kernels.available(), reason="lmforge's kernels do not build here"
)


def test_kernels_build_wherever_they_can() -> None:
    """On an x86-64 AVX2 machine with a compiler and ninja, the build must succeed (a broken
    build would otherwise pass silently through the PyTorch fallback)."""
    if kernels._unsupported_reason() is None:
        assert kernels.available()


def int8_activations(x: torch.Tensor, k: int) -> torch.Tensor:
    """x [M, K'] zero-padded to K and rounded to int8 per block of 32: what the kernels see."""
    xb = nn.functional.pad(x, (0, k - x.shape[1])).reshape(x.shape[0], -1, 32)
    d = xb.abs().amax(-1, keepdim=True) / 127
    return (torch.round(xb / torch.where(d > 0, d, 1)) * d).reshape(x.shape[0], k)


def random_int4(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = torch.randint(0, 16, (n, k), dtype=torch.int32)
    d = (torch.rand(n, k // 32) * 0.1).half()
    m = (torch.randn(n, k // 32) * 0.1).half()
    return q, d, m


@needs_kernels
def test_int4_pack_round_trips() -> None:
    q, _, _ = random_int4(5, 128)
    packed = kernels.pack_int4(q)
    assert packed.shape == (5, 64) and packed.dtype == torch.uint8
    assert torch.equal(kernels.unpack_int4(packed), q)
    assert int(packed[0, 0]) == int(q[0, 0]) | int(q[0, 16]) << 4  # GGUF's nibble order


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize(("k_in", "k", "n"), [(576, 576, 960), (1536, 1536, 40), (100, 128, 37)])
def test_int4_linear_matches_reference(rows: int, k_in: int, k: int, n: int) -> None:
    torch.manual_seed(rows)
    q, d, m = random_int4(n, k)
    w = q.float() * d.float().repeat_interleave(32, 1) + m.float().repeat_interleave(32, 1)
    x, bias = torch.randn(rows, k_in), torch.randn(n)
    got = kernels.int4_linear(x, kernels.pack_int4(q), d, m, bias)
    want = int8_activations(x, k) @ w.T + bias
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize("rows", [1, 4, 7])
@pytest.mark.parametrize(("k_in", "k", "n"), [(576, 576, 49), (100, 128, 16)])
def test_int8_linear_matches_reference(rows: int, k_in: int, k: int, n: int) -> None:
    torch.manual_seed(rows)
    q = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    d = (torch.rand(n, k // 32) * 0.01).half()
    w = q.float() * d.float().repeat_interleave(32, 1)
    x = torch.randn(rows, k_in)
    got = kernels.int8_linear(x, q, d)
    torch.testing.assert_close(got, int8_activations(x, k) @ w.T, rtol=1e-5, atol=1e-4)


@needs_kernels
def test_kernels_keep_shape_and_dtype() -> None:
    q, d, m = random_int4(32, 64)
    x = torch.randn(2, 3, 64, dtype=torch.bfloat16)
    y = kernels.int4_linear(x, kernels.pack_int4(q), d, m)
    assert y.shape == (2, 3, 32) and y.dtype == torch.bfloat16
    flat = kernels.int4_linear(x.reshape(6, 64).float(), kernels.pack_int4(q), d, m)
    torch.testing.assert_close(y.float(), flat.reshape(2, 3, 32), rtol=1e-2, atol=1e-2)
    assert kernels.int4_linear(torch.randn(0, 64), kernels.pack_int4(q), d, m).shape == (0, 32)


@needs_kernels
def test_kernels_reject_bad_inputs() -> None:
    q, d, m = random_int4(16, 64)
    qs = kernels.pack_int4(q)
    with pytest.raises(RuntimeError, match="x has 65 features"):
        kernels.int4_linear(torch.randn(1, 65), qs, d, m)
    with pytest.raises(RuntimeError, match="d fp16"):
        kernels.int4_linear(torch.randn(1, 64), qs, d.float(), m)
    with pytest.raises(RuntimeError, match="multiple of 64"):
        kernels.int4_linear(torch.randn(1, 32), qs[:, :16], d[:, :1], m[:, :1])
    with pytest.raises(RuntimeError, match="int8"):
        kernels.int8_linear(torch.randn(1, 64), q.to(torch.uint8), d)
