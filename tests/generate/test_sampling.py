"""Sampling rules, checked against Hugging Face's logits processors."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lmforge.errors import LmforgeError
from lmforge.generate.sampling import (
    SamplingParams,
    apply_logit_bias,
    apply_min_p,
    apply_presence_frequency,
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    make_generators,
    process_logits,
    sample,
)

NEG = float("-inf")


@pytest.fixture
def logits() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 50) * 3


def same_kept(a: torch.Tensor, b: torch.Tensor) -> None:
    assert torch.equal(torch.isinf(a), torch.isinf(b))
    torch.testing.assert_close(a[~torch.isinf(a)], b[~torch.isinf(b)])


@pytest.mark.parametrize("k", [1, 5, 49, 50])
def test_top_k_matches_hf(logits: torch.Tensor, k: int) -> None:
    same_kept(apply_top_k(logits, k), TopKLogitsWarper(k)(None, logits.clone()))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999])
def test_top_p_matches_hf(logits: torch.Tensor, p: float) -> None:
    same_kept(apply_top_p(logits, p), TopPLogitsWarper(p)(None, logits.clone()))


@pytest.mark.parametrize("min_p", [0.01, 0.1, 0.5])
def test_min_p_matches_hf(logits: torch.Tensor, min_p: float) -> None:
    same_kept(apply_min_p(logits, min_p), MinPLogitsWarper(min_p)(None, logits.clone()))


def test_repetition_penalty_matches_hf(logits: torch.Tensor) -> None:
    ids = torch.tensor([[1, 2, 3, 3], [4, 5, 6, 7], [0, 0, 0, 0], [9, 10, 11, 49]])
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, ids, True)
    ref = RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, seen, 1.3), ref)


def test_temperature_matches_hf(logits: torch.Tensor) -> None:
    params = SamplingParams(temperature=0.7)
    torch.testing.assert_close(
        process_logits(logits, params), TemperatureLogitsWarper(0.7)(None, logits.clone())
    )


def test_presence_frequency_openai_formula() -> None:
    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0, 1, 3, 0]])
    out = apply_presence_frequency(logits, counts, presence=0.5, frequency=0.25)
    assert out.tolist() == [[0.0, -0.75, -1.25, 0.0]]


def test_logit_bias_forces_and_bans() -> None:
    logits = torch.zeros(2, 5)
    out = apply_logit_bias(logits, {3: 100.0, 0: -100.0})
    assert out.argmax(-1).tolist() == [3, 3] and out[0, 0] == -100
    with pytest.raises(LmforgeError, match="logit_bias"):
        apply_logit_bias(logits, {7: 1.0})


def test_greedy_ignores_warpers_but_not_bias(logits: torch.Tensor) -> None:
    params = SamplingParams(top_k=1, top_p=0.1, logit_bias={7: 1000.0})
    assert sample(process_logits(logits, params), greedy=True).tolist() == [7, 7, 7, 7]


def test_sampling_respects_top_k_and_seed(logits: torch.Tensor) -> None:
    params = SamplingParams(temperature=1.5, top_k=3)
    allowed = torch.topk(logits, 3).indices
    draws = [
        sample(process_logits(logits, params), False, make_generators(s, 4)) for s in range(30)
    ]
    for d in draws:
        assert all(int(d[i]) in allowed[i].tolist() for i in range(4))
    again = sample(process_logits(logits, params), False, make_generators(5, 4))
    assert torch.equal(again, draws[5])


def test_sampling_frequencies_follow_softmax() -> None:
    """5,000 draws from a 4-way distribution land within 4 sigma of each probability."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    probs = logits.softmax(-1)[0]
    g = make_generators(123, 1)
    draws = torch.stack([sample(logits, False, g) for _ in range(5000)]).flatten()
    freq = torch.bincount(draws, minlength=4).float() / 5000
    sigma = (probs * (1 - probs) / 5000).sqrt()
    assert ((freq - probs).abs() < 4 * sigma).all(), (freq, probs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(temperature=-1), dict(top_p=0), dict(top_k=0), dict(min_p=2), dict(max_new_tokens=-1),
     dict(repetition_penalty=0), dict(stop=[""])],
)  # fmt: skip
def test_bad_params_are_user_errors(kwargs: dict) -> None:
    with pytest.raises(LmforgeError, match="invalid sampling parameter"):
        SamplingParams(**kwargs)
