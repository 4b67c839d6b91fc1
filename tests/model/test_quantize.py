"""Weight-only int8/int4 quantization: kernels, padding, exact GGUF repacking, perplexity."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants
from torch import nn

from lmforge import kernels
from lmforge.assets import DEFAULT_MODEL, resolve_model_path
from lmforge.checkpoint.gguf import GGUFTensor, dequantize, read_gguf
from lmforge.checkpoint.gguf_quant import gguf_blocks_to_int4, gguf_exact_layers
from lmforge.errors import LmforgeError
from lmforge.model import Transformer
from lmforge.model.quantize import (
    Fp16Linear,
    HybridLinear,
    Int4Linear,
    Int8Linear,
    default_head,
    quantize_int4,
    quantize_int8,
    quantize_model,
)
from model_helpers import tiny as shared_tiny


def linear(k: int, n: int, bias: bool = False, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(k, n, bias=bias)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


def int16_activations(x: torch.Tensor) -> torch.Tensor:
    """What lmforge's kernels multiply by: x rounded to int16 per block of 32 (zero-padded)."""
    k = x.shape[-1]
    xb = nn.functional.pad(x, (0, -k % 32)).reshape(*x.shape[:-1], -1, 32)
    d = xb.abs().amax(-1, keepdim=True) / 32767
    return (torch.round(xb / torch.where(d > 0, d, 1)) * d).flatten(-2)[..., :k]


@pytest.fixture(params=["lmforge", "pytorch"])
def backend(request, monkeypatch) -> str:
    """Run a test on lmforge's kernels and on PyTorch's (the fallback where they can't build)."""
    if request.param == "lmforge" and not kernels.available():
        pytest.skip("lmforge's kernels do not build here (test_kernels checks where they must)")
    if request.param == "pytorch":
        monkeypatch.setattr(kernels, "available", lambda: False)
    return request.param


def reference(layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The layer's output computed in float from its own dequantized weights."""
    xq = int16_activations(x) if getattr(layer, "native", False) else x
    return nn.functional.linear(xq, layer.dequantize(), bias)


@pytest.mark.parametrize(("k", "n", "bias"), [(64, 32, False), (576, 960, True), (100, 37, True)])
def test_int8_matches_its_dequantized_weights(backend: str, k: int, n: int, bias: bool) -> None:
    lin = linear(k, n, bias)
    x = torch.randn(5, 3, k)
    q8 = Int8Linear.from_linear(lin, act_dtype=torch.float32)
    assert q8.native == (backend == "lmforge")
    torch.testing.assert_close(q8(x), reference(q8, x, lin.bias), rtol=1e-4, atol=1e-4)
    assert rel_err(q8(x), lin(x)) < 0.01  # int8 weights (and activations): under 1%
    fast = Int8Linear.from_linear(lin)  # the default act_dtype (bf16 for PyTorch's kernel)
    assert fast(x).dtype == torch.float32 and rel_err(fast(x), lin(x)) < 0.02


def test_int8_blocks_are_q8_0_and_round_trip() -> None:
    weights = np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32)
    raw = gguf_quants.quantize(weights, GGMLQuantizationType.Q8_0)
    exact = dequantize(raw, GGMLQuantizationType.Q8_0)
    q, d = quantize_int8(exact)  # a Q8_0 tensor quantized again: the same numbers
    torch.testing.assert_close(q.float() * d.repeat_interleave(32, 1), exact, rtol=0, atol=0)


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize(("k", "n"), [(576, 960), (100, 37)])
def test_int4_matches_the_q4_1_convention(backend: str, group_size: int, k: int, n: int) -> None:
    lin = linear(k, n, bias=True)
    q4 = Int4Linear.from_linear(lin, group_size, act_dtype=torch.float32)
    # reference dequantization: w = d * q + m, groups along K
    w = nn.functional.pad(lin.weight.detach(), (0, -k % group_size))
    q, d, m = quantize_int4(w, group_size)
    assert d.dtype == torch.float32 and torch.equal(d, d.half().float())  # stored as fp16
    ref_w = q.float() * d.repeat_interleave(group_size, 1) + m.repeat_interleave(group_size, 1)
    torch.testing.assert_close(q4.dequantize(), ref_w[:, :k], rtol=1e-5, atol=1e-6)
    x = torch.randn(4, k)
    torch.testing.assert_close(q4(x), reference(q4, x, lin.bias), rtol=1e-4, atol=1e-4)
    assert rel_err(q4(x), lin(x)) < 0.12


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1"])
def test_gguf_blocks_repack_exactly(backend: str, qtype: str) -> None:
    t = GGMLQuantizationType[qtype]
    weights = np.random.default_rng(0).standard_normal((48, 128)).astype(np.float32)
    raw = gguf_quants.quantize(weights, t)
    tensor = GGUFTensor("blk.0.ffn_up.weight", t, (48, 128), raw)
    q, d, m = gguf_blocks_to_int4(tensor)
    layer = Int4Linear(q, d, m, 32, 128, act_dtype=torch.float32)
    exact = dequantize(raw, t)
    torch.testing.assert_close(layer.dequantize(), exact, rtol=0, atol=2e-6)
    x = torch.randn(3, 128)
    xq = int16_activations(x) if backend == "lmforge" else x
    torch.testing.assert_close(layer(x), xq @ exact.T, rtol=1e-5, atol=1e-5)


def test_gguf_repack_rejects_other_types() -> None:
    raw = gguf_quants.quantize(np.ones((2, 32), np.float32), GGMLQuantizationType.Q8_0)
    with pytest.raises(LmforgeError, match="Q8_0"):
        gguf_blocks_to_int4(GGUFTensor("x", GGMLQuantizationType.Q8_0, (2, 32), raw))


def tiny() -> Transformer:
    return shared_tiny(vocab_size=96, max_seq_len=32)


@pytest.mark.parametrize("mode", ["int8", "int4", "fp16"])
def test_quantize_model_replaces_every_linear(mode: str) -> None:
    model = tiny()
    ref = model(torch.tensor([[1, 2, 3, 4]]))
    quantize_model(model, mode)
    kinds = {type(m).__name__ for m in model.modules()}
    layer_kind = {"int8": "Int8Linear", "int4": "Int4Linear", "fp16": "Fp16Linear"}[mode]
    assert "Linear" not in kinds and layer_kind in kinds
    assert type(model.layers[1].feed_forward.w2).__name__ == layer_kind
    # int8 and fp16 modes: the head too; int4 mode: the head as default_head() says
    head = {"int8": Int8Linear, "fp16": Fp16Linear}.get(mode)
    if mode == "int4":
        head = Int8Linear if default_head() == "int8" else Fp16Linear
    assert isinstance(model.output, head)
    assert model.tok_embeddings.weight.dtype == torch.float32  # tied embedding kept for lookups
    out = model(torch.tensor([[1, 2, 3, 4]]))
    assert rel_err(out, ref) < {"int8": 0.05, "int4": 0.25, "fp16": 2e-3}[mode]


@pytest.mark.parametrize("bias", [False, True])
def test_fp16_linear_matches_fp16_rounded_weights(bias: bool) -> None:
    lin = linear(576, 960, bias)
    f16 = Fp16Linear.from_linear(lin)
    torch.testing.assert_close(f16.dequantize(), lin.weight.detach().half().float())
    x = torch.randn(2, 3, 576)
    ref = nn.functional.linear(x, lin.weight.detach().half().float(), lin.bias)
    torch.testing.assert_close(f16(x), ref, rtol=1e-4, atol=1e-4)
    assert f16(x.bfloat16()).dtype == torch.bfloat16  # returns the caller's dtype


@pytest.mark.parametrize("head", ["fp16", "int8", "int4", None])
def test_int4_head_choice(head: str | None) -> None:
    model = quantize_model(tiny(), "int4", head=head)
    kinds = {"fp16": Fp16Linear, "int8": Int8Linear, "int4": Int4Linear, None: nn.Linear}
    assert type(model.output) is kinds[head]
    assert isinstance(model.layers[0].feed_forward.w1, Int4Linear)


def test_quantize_model_bad_arguments() -> None:
    with pytest.raises(LmforgeError, match="unknown quantization 'int3'"):
        quantize_model(tiny(), "int3")
    with pytest.raises(LmforgeError, match="group size"):
        quantize_model(tiny(), "int4", group_size=48)
    with pytest.raises(LmforgeError, match="unknown head quantization 'int2'"):
        quantize_model(tiny(), "int4", head="int2")


# -- the bundled SmolLM2 (slow) -----------------------------------------------------------------


def smollm2_path() -> Path:
    return resolve_model_path(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def smollm2():
    from lmforge.checkpoint import load_model

    return load_model(smollm2_path())  # (model, tokenizer) of the handle


@pytest.mark.slow
def test_smollm2_q4_1_repack_is_exact(smollm2) -> None:
    model, _ = smollm2
    layers = gguf_exact_layers(model, read_gguf(smollm2_path()), act_dtype=torch.float32)
    assert len(layers) == 5 * model.config.n_layers + 1  # every block matrix, and the Q8_0 head
    head = layers["output"]
    assert isinstance(head, Int8Linear)
    q, d = quantize_int8(model.output.weight.detach())  # re-quantizing Q8_0 gives it back
    assert torch.equal(head.qs, q) and torch.equal(head.d, d.to(torch.float16))
    for name in ("layers.0.attention.wqkv", "layers.7.feed_forward.w2", "layers.29.attention.wo"):
        got = layers[name].dequantize()
        torch.testing.assert_close(
            got, model.get_submodule(name).weight.detach(), rtol=0, atol=1e-6
        )


def perplexity(model: nn.Module, ids: torch.Tensor) -> float:
    with torch.inference_mode():
        logits = model(ids[:, :-1]).float()
    return float(nn.functional.cross_entropy(logits[0], ids[0, 1:]).exp())


@pytest.mark.slow
def test_smollm2_perplexity_of_quantized_modes(smollm2, shared_data: Path) -> None:
    model, tok = smollm2
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text()[-8000:]  # held out: the end
    ids = torch.tensor([tok.encode(text)[:385]])
    base = perplexity(model, ids)
    bf16 = perplexity(copy.deepcopy(model).to(torch.bfloat16), ids)
    int8 = perplexity(quantize_model(copy.deepcopy(model), "int8"), ids)
    exact = gguf_exact_layers(model, read_gguf(smollm2_path()))
    int4 = perplexity(quantize_model(copy.deepcopy(model), "int4", exact=exact), ids)
    int4_fp16_head = perplexity(
        quantize_model(copy.deepcopy(model), "int4", exact=exact, head="fp16"), ids
    )
    assert 5 < base < 200  # a real language model on Shakespeare
    assert abs(bf16 / base - 1) < 0.01
    assert abs(int8 / base - 1) < 0.01
    assert abs(int4 / base - 1) < 0.01  # the default: exact Q4_1 repack + int8 head
    fp16 = perplexity(quantize_model(copy.deepcopy(model), "fp16"), ids)
    assert abs(fp16 / base - 1) < 0.001  # the file's weights to fp16 rounding
    assert abs(int4_fp16_head / base - 1) < 0.01


def test_float_prefill_uses_float_weights_for_many_rows() -> None:
    model = tiny()
    tokens = torch.arange(20)[None] % 96
    ref = model(tokens)
    quantize_model(model, "int4", float_prefill=True)
    assert isinstance(model.layers[0].attention.wqkv, HybridLinear)
    torch.testing.assert_close(model(tokens), ref)  # 20 rows: the float path, exactly
    one = model(tokens[:, :1])  # 1 row: the int4 path
    assert 0 < rel_err(one, ref[:, :1]) < 0.25
    quantize_model(model, "int8")  # the kept float layers are not quantized a second time
    assert isinstance(model.layers[0].attention.wqkv.full, nn.Linear)
