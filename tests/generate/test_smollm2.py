"""Generation with the bundled SmolLM2-135M-Instruct (loaded once for the module)."""

from __future__ import annotations

import pytest
import torch

from lmforge.assets import DEFAULT_MODEL
from lmforge.checkpoint import ModelHandle, auto_quantization
from lmforge.generate import Generator, SamplingParams
from lmforge.generate.chat import ChatModel
from lmforge.generate.speculative import SpeculativeGenerator, truncated_draft

pytestmark = pytest.mark.slow

PROMPTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Once upon a time, in a small village at the edge of a great forest, there lived",
]


@pytest.fixture(scope="module")
def smol():
    from lmforge.checkpoint import load_model

    model, tok = load_model(DEFAULT_MODEL)
    return model, tok


def test_cached_decode_equals_recomputation(smol) -> None:
    model, tok = smol
    result = Generator(model, tok).generate(
        PROMPTS[0], SamplingParams(max_new_tokens=8, ignore_eos=True)
    )
    model.reset_cache()
    ids = tok.encode(PROMPTS[0])
    with torch.no_grad():
        for want in result.token_ids:
            logits = model(torch.tensor([ids]))[0, -1]
            assert int(logits.argmax()) == want
            ids.append(want)


def test_batched_equals_one_by_one(smol) -> None:
    model, tok = smol
    gen = Generator(model, tok)
    params = SamplingParams(max_new_tokens=12, ignore_eos=True)
    batch = gen.generate_batch(PROMPTS, params)
    for prompt, got in zip(PROMPTS, batch, strict=True):
        assert got.token_ids == gen.generate(prompt, params).token_ids


def test_speculative_greedy_equals_plain_greedy(smol) -> None:
    model, tok = smol
    spec = SpeculativeGenerator(model, truncated_draft(model, 6), tok, k=4)
    params = SamplingParams(max_new_tokens=24, ignore_eos=True)
    got = spec.generate(PROMPTS[1], params)
    assert got.token_ids == Generator(model, tok).generate(PROMPTS[1], params).token_ids
    assert spec.stats["rounds"] > 0


def test_chat_answers_and_stops_at_end_of_turn(smol) -> None:
    model, tok = smol
    chat = ChatModel(ModelHandle.of(model, tok, DEFAULT_MODEL))
    assert chat.count_tokens("What is the capital of France?") > 3
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    result = chat.chat_result(messages, max_new_tokens=20)
    assert "Paris" in result.text and result.finish_reason == "stop"
    assert "<|im_end|>" not in result.text
    assert "".join(chat.stream_chat(messages, max_new_tokens=20)) == result.text


def test_auto_mode_repacks_the_q4_1_file() -> None:
    assert auto_quantization(DEFAULT_MODEL) == "int4"
