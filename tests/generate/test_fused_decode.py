"""FusedDecoder (all blocks in one C++ call) against the model's own forward."""

from __future__ import annotations

import pytest
import torch

from lmforge import kernels
from lmforge.generate import Generator, SamplingParams
from lmforge.generate import engine as engine_module
from lmforge.generate.fused_decode import FusedDecoder
from lmforge.model import ModelConfig, Transformer
from lmforge.model.quantize import quantize_model
from model_helpers import byte_tokenizer, tiny_model

pytestmark = pytest.mark.skipif(not kernels.available(), reason="lmforge's kernels do not build")


def llama(qkv_bias: bool = False) -> Transformer:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=64, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64,
        qkv_bias=qkv_bias,
    )  # fmt: skip
    return Transformer(config).eval()


@pytest.mark.parametrize(("mode", "qkv_bias"), [("int4", False), ("int8", True), ("int4", True)])
def test_fused_step_equals_the_model_forward(mode: str, qkv_bias: bool) -> None:
    model = quantize_model(llama(qkv_bias), mode, float_prefill=mode == "int4")
    decoder = FusedDecoder.for_model(model)
    assert decoder is not None
    prompts = torch.randint(0, 64, (2, 3, 7))
    key_ok = torch.ones(3, 16, dtype=torch.bool)
    key_ok[2, :3] = False  # row 2 is left-padded by three slots
    positions = torch.tensor([[7], [7], [4]])
    step = torch.randint(0, 64, (3, 1))

    def run(fused: bool, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.setup_cache(3, 16)  # new caches every time: the decoder must follow them
        with torch.inference_mode():
            model(prompt, torch.arange(7), None, key_ok[:, None, None, :7])
            args = (step, torch.tensor([7]), positions, key_ok[:, None, None, :8])
            logits = decoder(*args) if fused else model(*args)[:, -1]
            k = model.layers[1].attention.kv_cache.k[:, :, :8].clone()
        return logits, k

    for prompt in prompts:  # the second prompt would meet the first's keys in stale caches
        (fused, k_fused), (eager, k_eager) = run(True, prompt), run(False, prompt)
        torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(k_fused, k_eager, rtol=1e-5, atol=1e-5)  # the same cache write


def test_generator_uses_it_and_gives_the_same_tokens(monkeypatch) -> None:
    gen = Generator(quantize_model(tiny_model(), "int4"), byte_tokenizer())
    params = SamplingParams(max_new_tokens=12, ignore_eos=True)
    prompts = ["hello there", "hi"]  # different lengths: left padding
    fused = gen.generate_batch(prompts, params)
    assert gen._fused is not None
    monkeypatch.setattr(engine_module, "fused_tensors", lambda m: None)
    gen._fused = None
    eager = gen.generate_batch(prompts, params)
    assert gen._fused is None
    for a, b in zip(fused, eager, strict=True):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)


def test_only_quantized_llama_blocks_qualify() -> None:
    assert FusedDecoder.for_model(llama()) is None  # float weights: the model's own forward
    gpt2 = Transformer(
        ModelConfig(vocab_size=64, dim=64, n_layers=1, n_heads=4, max_seq_len=32, norm="layernorm",
                    mlp="gelu", pos="learned", bias=True)
    )  # fmt: skip
    assert FusedDecoder.for_model(quantize_model(gpt2, "int4")) is None
    assert FusedDecoder.for_model(quantize_model(llama(), "fp16")) is None


def test_generator_keeps_its_decoder_and_a_second_prompt_matches_a_fresh_one() -> None:
    model = quantize_model(tiny_model(), "int4")
    gen = Generator(model, byte_tokenizer())
    params = SamplingParams(max_new_tokens=10, ignore_eos=True)
    gen.generate("hello there", params)
    decoder, caches = gen._fused, gen._caches
    second = gen.generate("a different prompt", params)
    assert gen._fused is decoder and gen._caches is caches  # kept across calls
    model.reset_cache()  # another user of the model detaches the cache: it comes back
    assert gen.generate("a different prompt", params).token_ids == second.token_ids
    fresh = Generator(model, byte_tokenizer()).generate("a different prompt", params)
    assert second.token_ids == fresh.token_ids


def test_generator_follows_changed_weights() -> None:
    tok, params = byte_tokenizer(), SamplingParams(max_new_tokens=10, ignore_eos=True)
    model = quantize_model(tiny_model(seed=0), "int4")
    gen = Generator(model, tok)
    gen.generate("hello there", params)
    old = gen._fused
    other = quantize_model(tiny_model(seed=1), "int8")
    for name in ("wqkv", "wo"):  # replace modules of every block: a new decoder is needed
        for mine, theirs in zip(model.layers, other.layers, strict=True):
            setattr(mine.attention, name, getattr(theirs.attention, name))
    with torch.no_grad():  # and an in-place change of a norm weight
        model.layers[0].attention_norm.weight.mul_(0.5)
    got = gen.generate("hello there", params)
    assert gen._fused is not old
    assert got.token_ids == Generator(model, tok).generate("hello there", params).token_ids


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_decoding_runs_in_every_precision(dtype: torch.dtype, monkeypatch) -> None:
    model = quantize_model(tiny_model().to(dtype), "int4", float_prefill=True)
    gen = Generator(model, byte_tokenizer())
    params = SamplingParams(max_new_tokens=8, ignore_eos=True)
    fused = gen.generate("hello there", params)
    assert gen._fused is not None and gen._caches[0].k.dtype == torch.float32
    monkeypatch.setattr(engine_module, "fused_tensors", lambda m: None)
    gen._fused = None
    eager = gen.generate("hello there", params)
    assert gen._fused is None
    assert fused.logprobs == pytest.approx(eager.logprobs, abs=0.1)  # bf16/fp16 rounding
