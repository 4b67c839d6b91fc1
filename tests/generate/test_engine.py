"""The decoding loop on a tiny random model: cache, batching, seeds, stops, logprobs, errors."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.generate import Generator, SamplingParams
from model_helpers import EOS

PROMPTS = ["hello", "The quick brown fox jumps", "a", "éclair 😀"]


def greedy_by_recomputation(model, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """Reference: no cache, the whole sequence through the model at every step."""
    model.reset_cache()
    ids = list(ids)
    out, lps = [], []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids]))[0, -1].float()
            tok = int(logits.argmax())
            out.append(tok)
            lps.append(float(logits.log_softmax(-1)[tok]))
            ids.append(tok)
    return out, lps


@pytest.mark.parametrize("prompt", PROMPTS)
def test_kv_cache_decode_equals_full_recomputation(model, tok, prompt: str) -> None:
    gen = Generator(model, tok)
    result = gen.generate(prompt, SamplingParams(max_new_tokens=20, ignore_eos=True))
    ref_ids, ref_lps = greedy_by_recomputation(model, tok.encode(prompt), 20)
    assert result.token_ids == ref_ids
    assert result.logprobs == pytest.approx(ref_lps, abs=1e-4)
    assert result.finish_reason == "length" and result.prompt_tokens == len(tok.encode(prompt))


def test_batched_equals_one_by_one(model, tok) -> None:
    gen = Generator(model, tok)
    params = SamplingParams(max_new_tokens=16, ignore_eos=True)
    batch = gen.generate_batch(PROMPTS, params)
    for prompt, got in zip(PROMPTS, batch, strict=True):
        alone = gen.generate(prompt, params)
        assert got.token_ids == alone.token_ids
        assert got.logprobs == pytest.approx(alone.logprobs, abs=1e-4)


def test_batched_sampling_equals_one_by_one_with_the_same_seed(model, tok) -> None:
    gen = Generator(model, tok)
    params = SamplingParams(
        max_new_tokens=12, temperature=0.9, top_k=50, top_p=0.95, seed=7, ignore_eos=True
    )
    batch = gen.generate_batch(PROMPTS[:3], params)
    for prompt, got in zip(PROMPTS[:3], batch, strict=True):
        assert got.token_ids == gen.generate(prompt, params).token_ids


def test_seeded_sample_is_reproducible_and_seeds_differ(model, tok) -> None:
    gen = Generator(model, tok)
    p = dict(
        max_new_tokens=24, temperature=1.0, min_p=0.02, repetition_penalty=1.2, ignore_eos=True
    )
    a = gen.generate("hello", SamplingParams(seed=1, **p)).token_ids
    b = gen.generate("hello", SamplingParams(seed=1, **p)).token_ids
    c = gen.generate("hello", SamplingParams(seed=2, **p)).token_ids
    assert a == b and a != c


def test_stream_deltas_join_to_the_text(model, tok) -> None:
    gen = Generator(model, tok)
    params = SamplingParams(max_new_tokens=30, temperature=1.0, seed=3, ignore_eos=True)
    deltas = list(gen.stream("éclair", params))
    assert "".join(deltas) == gen.generate("éclair", params).text
    assert all(d for d in deltas)  # never an empty delta


def test_stop_string_cuts_exactly(model, tok) -> None:
    gen = Generator(model, tok)
    full = gen.generate("hello", SamplingParams(max_new_tokens=30, ignore_eos=True))
    text = full.text
    stop = text[10:13]  # a string the model is known to produce
    cut = gen.generate("hello", SamplingParams(max_new_tokens=30, ignore_eos=True, stop=[stop]))
    assert cut.text == text[: text.find(stop)]
    assert cut.finish_reason == "stop"
    assert (
        "".join(
            gen.stream("hello", SamplingParams(max_new_tokens=30, ignore_eos=True, stop=[stop]))
        )
        == cut.text
    )


def test_stop_token_ids_and_eos(model, tok) -> None:
    gen = Generator(model, tok)
    full = gen.generate("hello", SamplingParams(max_new_tokens=20, ignore_eos=True)).token_ids
    r = gen.generate("hello", SamplingParams(max_new_tokens=20, stop_token_ids=[full[5]]))
    first = full.index(full[5])
    assert r.token_ids == full[: first + 1] and r.finish_reason == "stop"
    forced = gen.generate("hello", SamplingParams(max_new_tokens=20, logit_bias={EOS: 1e4}))
    assert forced.token_ids == [EOS] and forced.text == "" and forced.finish_reason == "stop"


def test_max_new_tokens_and_context_limit(model, tok) -> None:
    gen = Generator(model, tok)
    assert len(gen.generate("hi", SamplingParams(max_new_tokens=3, ignore_eos=True)).token_ids) == 3
    assert gen.generate("hi", SamplingParams(max_new_tokens=0)).token_ids == []
    near = "x" * (model.config.max_seq_len - 4)
    r = gen.generate(near, SamplingParams(max_new_tokens=50, ignore_eos=True))
    assert len(r.token_ids) == 4 and r.finish_reason == "length"


def test_prompt_longer_than_context_is_a_clear_error(model, tok) -> None:
    gen = Generator(model, tok)
    with pytest.raises(LmforgeError, match=r"prompt is 96 tokens.*context is 96"):
        gen.generate("x" * 96)
    with pytest.raises(LmforgeError, match="empty prompt"):
        gen.generate("")


def test_cache_is_reused_and_grown(model, tok) -> None:
    gen = Generator(model, tok)
    gen.release_cache()
    gen.generate("hi", SamplingParams(max_new_tokens=2))
    first = model.layers[0].attention.kv_cache
    gen.generate("hello", SamplingParams(max_new_tokens=2))
    assert model.layers[0].attention.kv_cache is first
    gen.generate_batch(["a", "b", "c"], SamplingParams(max_new_tokens=2))
    assert model.layers[0].attention.kv_cache.k.shape[0] == 3
