"""lmforge's AVX2 kernels (lmforge.kernels) against a float reference of the same arithmetic."""

from __future__ import annotations

import logging

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


def test_a_failed_build_falls_back_with_its_reason(monkeypatch, caplog) -> None:
    def broken_build() -> None:
        raise RuntimeError("Error building extension 'lmforge_kernels'\nc++: fatal error: no input")

    kernels.available.cache_clear()
    monkeypatch.setattr(kernels, "_unsupported_reason", lambda: None)
    monkeypatch.setattr(kernels, "_build", broken_build)
    try:
        with caplog.at_level(logging.INFO, logger="lmforge.kernels"):
            assert kernels.available() is False
        assert "building the kernels failed: c++: fatal error: no input" in caplog.text
    finally:
        kernels.available.cache_clear()


def test_kernels_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("LMFORGE_KERNELS", "0")
    assert kernels._unsupported_reason() == "LMFORGE_KERNELS=0"


def int16_activations(x: torch.Tensor, k: int) -> torch.Tensor:
    """x [M, K'] zero-padded to K and rounded to int16 per block of 32: what the kernels see."""
    xb = nn.functional.pad(x, (0, k - x.shape[1])).reshape(x.shape[0], -1, 32)
    d = xb.abs().amax(-1, keepdim=True) / 32767
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
    assert int(packed[0, 4]) == int(q[0, 32]) | int(q[0, 48]) << 4  # the pair's second block
    assert int(packed[0, 9]) == int(q[0, 5]) | int(q[0, 21]) << 4


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize(("k_in", "k", "n"), [(576, 576, 960), (1536, 1536, 40), (100, 128, 37)])
def test_int4_linear_matches_reference(rows: int, k_in: int, k: int, n: int) -> None:
    torch.manual_seed(rows)
    q, d, m = random_int4(n, k)
    w = q.float() * d.float().repeat_interleave(32, 1) + m.float().repeat_interleave(32, 1)
    x, bias = torch.randn(rows, k_in), torch.randn(n)
    got = kernels.int4_linear(x, kernels.pack_int4(q), d, m, bias)
    want = int16_activations(x, k) @ w.T + bias
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


@needs_kernels
@pytest.mark.parametrize("rows", [1, 4, 7])
@pytest.mark.parametrize(("k_in", "k", "n"), [(576, 576, 49), (100, 128, 16), (96, 96, 24)])
def test_int8_linear_matches_reference(rows: int, k_in: int, k: int, n: int) -> None:
    torch.manual_seed(rows)
    q = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    d = (torch.rand(n, k // 32) * 0.01).half()
    w = q.float() * d.float().repeat_interleave(32, 1)
    x = torch.randn(rows, k_in)
    got = kernels.int8_linear(x, q, d)
    torch.testing.assert_close(got, int16_activations(x, k) @ w.T, rtol=1e-4, atol=1e-3)


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


@needs_kernels
def test_rms_norm_matches_pytorch() -> None:
    x, w = torch.randn(3, 5, 100), torch.randn(100)
    want = nn.functional.rms_norm(x, (100,), w, 1e-5)
    torch.testing.assert_close(kernels.rms_norm(x, w, 1e-5), want, rtol=1e-5, atol=1e-5)


def reference_attention(qkv, rope, k_cache, v_cache, pos, H, KV, mask):
    """The eager path: RoPE, cache write, SDPA with GQA (what Attention.forward does)."""
    from lmforge.model.rope import apply_rope

    B, D = qkv.shape[0], k_cache.shape[-1]
    q, k, v = qkv.view(B, 1, H + 2 * KV, D).split([H, KV, KV], dim=2)
    if rope is not None:
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    k_cache[:B, :, pos], v_cache[:B, :, pos] = k[:, 0], v[:, 0]
    allowed = torch.ones(B, 1, 1, pos + 1, dtype=torch.bool)
    if mask is not None:
        allowed = mask[..., : pos + 1].reshape(-1, 1, 1, pos + 1).clone()
        allowed[..., pos] = True
    y = nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k_cache[:B, :, : pos + 1], v_cache[:B, :, : pos + 1],
        attn_mask=allowed, enable_gqa=True,
    )  # fmt: skip
    return y.transpose(1, 2).reshape(B, 1, H * D)


@needs_kernels
@pytest.mark.parametrize(("B", "H", "KV", "use_rope", "masked", "D"), [
    (1, 9, 3, True, False, 64), (3, 4, 4, True, True, 64), (2, 6, 2, False, True, 64),
    (1, 2, 1, False, False, 64), (2, 4, 2, True, True, 24), (1, 2, 2, True, False, 10),
])  # fmt: skip
def test_decode_attention_matches_sdpa(
    B: int, H: int, KV: int, use_rope: bool, masked: bool, D: int
) -> None:
    """D 64 and 24 take the vector paths, 10 the scalar ones; 18 slots, 8 at a time and 2."""
    torch.manual_seed(0)
    S_max, pos = 40, 17
    k_cache, v_cache = torch.randn(B + 1, KV, S_max, D), torch.randn(B + 1, KV, S_max, D)
    qkv = torch.randn(B, 1, (H + 2 * KV) * D)
    rope = (torch.randn(B, 1, 1, D), torch.randn(B, 1, 1, D)) if use_rope else None
    mask = (torch.rand(B, 1, 1, S_max) > 0.3) if masked else None
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    want = reference_attention(qkv, rope, k_ref, v_ref, pos, H, KV, mask)
    got = kernels.decode_attention(qkv, rope, k_cache, v_cache, pos, H, KV, mask)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(k_cache, k_ref)  # the same slot written, other rows untouched
    torch.testing.assert_close(v_cache, v_ref)


@needs_kernels
def test_decode_attention_rejects_mismatched_shapes() -> None:
    cache = torch.zeros(1, 2, 8, 64)
    with pytest.raises(RuntimeError, match="do not match"):
        kernels.decode_attention(torch.randn(1, 1, 5 * 64), None, cache, cache.clone(), 0, 4, 2)
    with pytest.raises(RuntimeError, match="outside the cache"):
        kernels.decode_attention(torch.randn(1, 1, 8 * 64), None, cache, cache.clone(), 8, 4, 2)


@needs_kernels
def test_decode_layers_rejects_mismatched_lists() -> None:
    cache = torch.zeros(1, 2, 8, 64)
    with pytest.raises(RuntimeError, match="per layer, 2 norms, 20 linear tensors"):
        kernels.decode_layers([torch.ones(64)], 1e-5, [], [cache], [cache], 4, 2)
