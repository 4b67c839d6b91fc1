"""Speculative decoding: greedy identical to the target alone; sampling preserves p."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.generate import Generator, SamplingParams
from lmforge.generate.speculative import SpeculativeGenerator, accept_draft, truncated_draft
from model_helpers import tiny_model


@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_equals_plain_greedy_truncated_draft(model, tok, k: int) -> None:
    spec = SpeculativeGenerator(model, truncated_draft(model, 1), tok, k=k)
    plain = Generator(model, tok)
    for prompt in ["hello", "The quick brown fox", "z"]:
        params = SamplingParams(max_new_tokens=25, ignore_eos=True)
        assert spec.generate(prompt, params).token_ids == plain.generate(prompt, params).token_ids
    assert spec.stats["accepted"] > 0  # the draft was right sometimes: the fast path ran


def test_greedy_equals_plain_greedy_random_draft(model, tok) -> None:
    spec = SpeculativeGenerator(model, tiny_model(seed=5, n_layers=1), tok, k=4)
    params = SamplingParams(max_new_tokens=30, ignore_eos=True, stop=["zz"])
    got, want = spec.generate("abc", params), Generator(model, tok).generate("abc", params)
    assert got.token_ids == want.token_ids and got.text == want.text


def test_seeded_speculative_sampling_is_reproducible(model, tok) -> None:
    spec = SpeculativeGenerator(model, truncated_draft(model, 1), tok, k=3)
    params = SamplingParams(max_new_tokens=20, temperature=1.0, top_k=20, seed=11, ignore_eos=True)
    assert spec.generate("hi", params).token_ids == spec.generate("hi", params).token_ids
    assert "".join(spec.stream("hi", params)) == spec.generate("hi", params).text


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_accept_rule_preserves_the_target_distribution() -> None:
    """Tiny vocabulary, k=2, q far from p: the first emitted token follows p0, and the second
    (when the first draft was kept) follows p1. 10,000 rounds; chi-square 99.9% bounds (3 dof:
    16.27)."""
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.05, 0.05, 0.4]]).log()
    q = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]]).log()
    p3 = torch.cat([p, torch.zeros(1, 4)])  # the bonus position (unused in these statistics)
    g = torch.Generator().manual_seed(0)
    first, second = torch.zeros(4), torch.zeros(4)
    for _ in range(10000):
        d1 = int(torch.multinomial(q[0].exp(), 1, generator=g))
        d2 = int(torch.multinomial(q[1].exp(), 1, generator=g))
        out = accept_draft(p3, q, [d1, d2], greedy=False, generator=g)
        first[out[0]] += 1
        if len(out) >= 2:
            second[out[1]] += 1
    assert chi_square(first, p[0].exp()) < 16.27
    assert chi_square(second, p[1].exp()) < 16.27


def test_speculative_sampling_matches_target_end_to_end(tok) -> None:
    """First token of real speculative runs (random draft) follows the target's softmax."""
    vocab = 6
    target, draft = (
        tiny_model(seed=1, n_layers=2, vocab_size=vocab, std=0.5),
        tiny_model(seed=2, n_layers=1, vocab_size=vocab),
    )
    ids = [1, 2, 3]
    with torch.no_grad():
        p = target(torch.tensor([ids]))[0, -1].softmax(-1)
    spec = SpeculativeGenerator(target, draft, tok, k=2)
    counts = torch.zeros(vocab)
    for seed in range(800):
        out = spec.generate(
            ids, SamplingParams(max_new_tokens=1, temperature=1.0, seed=seed, ignore_eos=True)
        )
        counts[out.token_ids[0]] += 1
    assert chi_square(counts, p) < 20.5  # 5 dof, 99.9%


def test_vocabulary_mismatch_and_penalties_are_errors(model, tok) -> None:
    with pytest.raises(LmforgeError, match="vocabulary"):
        SpeculativeGenerator(model, tiny_model(vocab_size=100), tok)
    spec = SpeculativeGenerator(model, truncated_draft(model, 1), tok)
    with pytest.raises(LmforgeError, match="penalties"):
        spec.generate("hi", SamplingParams(repetition_penalty=1.2))
