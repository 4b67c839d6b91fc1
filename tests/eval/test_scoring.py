"""The batched log-likelihood scorer against plain one-sequence-at-a-time computations."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.errors import LmforgeError
from lmforge.eval.perplexity import perplexity, window_spans
from lmforge.eval.scoring import ChoiceRequest, encode_pair, score_choices


def plain_loglik(lm, context: str, continuation: str) -> float:
    """log p(continuation | context) from one ordinary causal forward pass, full logits."""
    ctx, cont = encode_pair(lm, context, continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(ids).double(), dim=-1)[0]
    return sum(float(logp[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))


REQUESTS = [
    ChoiceRequest("Q: Which is a fruit?\nA:", [" apple", " a chair", " the number seven"]),
    ChoiceRequest("The sky is ", ["blue", "green.", "made of cheese and glue"]),
    ChoiceRequest("x", [" y"]),
    ChoiceRequest("Predators eat", [" lions", " humans", " bunnies", " grass"]),
]


@pytest.mark.parametrize("strategy", ["packed", "separate"])
@pytest.mark.parametrize("batch_tokens", [1, 64, 4096])
def test_scores_match_plain_forward(tiny_lm, strategy, batch_tokens):
    scores = score_choices(tiny_lm, REQUESTS, strategy=strategy, batch_tokens=batch_tokens)
    for request, row in zip(REQUESTS, scores, strict=True):
        assert len(row) == len(request.continuations)
        for cont, got in zip(request.continuations, row, strict=True):
            assert got == pytest.approx(plain_loglik(tiny_lm, request.context, cont), abs=1e-4)


PRIMER = "Q: What is 2+2?\nA: 4.\n\nQ: Name a colour.\nA: Blue.\n\n"
PRIMED = [
    ChoiceRequest(PRIMER + "Q: Which is a fruit?\nA:", [" apple", " a chair", " seven"]),
    ChoiceRequest(PRIMER + "Q: Sky?\nA:", [" blue", " green."]),
    ChoiceRequest(PRIMER + "Q: Is fire hot?\nA:", [" yes", " no", ""]),
]


@pytest.mark.parametrize("batch_tokens", [1, 150, 4096])
def test_shared_primer_is_computed_once_and_scores_match(tiny_lm, batch_tokens):
    from lmforge.eval.scoring import _common_prefix, _encode

    encoded = [_encode(tiny_lm, i, r) for i, r in enumerate(PRIMED)]
    assert _common_prefix([e.context for e in encoded]) >= 40  # the primer, in bytes
    scores = score_choices(tiny_lm, PRIMED, batch_tokens=batch_tokens, min_shared_prefix=8)
    for request, row in zip(PRIMED, scores, strict=True):
        for cont, got in zip(request.continuations, row, strict=True):
            expected = plain_loglik(tiny_lm, request.context, cont) if cont else 0.0
            assert got == pytest.approx(expected, abs=1e-4)


def test_trailing_space_moves_to_continuation(tiny_lm):
    ctx, cont = encode_pair(tiny_lm, "The sky is ", "blue")
    assert bytes(ctx).decode() == "The sky is" and bytes(cont).decode() == " blue"


def test_long_context_is_left_truncated(tiny_lm):
    long = "word " * 100  # 500 bytes > max_seq_len 128
    (row,) = score_choices(tiny_lm, [ChoiceRequest(long + "end:", [" a", " bb"])])
    assert all(math.isfinite(x) for x in row)


@given(
    n=st.integers(min_value=2, max_value=300),
    context=st.integers(min_value=2, max_value=64),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_windows_score_every_token_once(n, context, data):
    stride = data.draw(st.integers(min_value=1, max_value=context))
    spans = window_spans(n, context, stride)
    scored = [t for _, end, first in spans for t in range(first, end)]
    assert scored == list(range(1, n))
    for begin, end, first in spans:
        assert end - begin <= context and begin < first <= end


def test_perplexity_matches_plain_computation(tiny_lm):
    text = "Hello world. This is a short text to score with a sliding window of bytes!"
    ids = [256, *text.encode()]
    # one window over everything: plain mean NLL of tokens 1..n-1
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm.model(torch.tensor([ids])).double(), dim=-1)[0]
    nll = -sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
    res = perplexity(tiny_lm, text, context=128, stride=128)
    assert res.tokens == len(text.encode())
    assert res.nll == pytest.approx(nll, rel=1e-5)
    assert res.ppl == pytest.approx(math.exp(nll / res.tokens), rel=1e-5)
    assert res.word_ppl == pytest.approx(math.exp(nll / len(text.split())), rel=1e-5)
    assert res.bits_per_byte == pytest.approx(nll / len(text.encode()) / math.log(2), rel=1e-5)

    # sliding windows: each target sees only its window; compute that by hand
    context, stride = 16, 8
    manual = 0.0
    for begin, end, first in window_spans(len(ids), context, stride):
        with torch.no_grad():
            lp = torch.log_softmax(tiny_lm.model(torch.tensor([ids[begin:end]])).double(), -1)[0]
        manual -= sum(float(lp[t - 1 - begin, ids[t]]) for t in range(first, end))
    res = perplexity(tiny_lm, text, context=context, stride=stride, batch_size=3)
    assert res.nll == pytest.approx(manual, rel=1e-5)
    assert res.windows == len(window_spans(len(ids), context, stride))


def test_perplexity_bad_options(tiny_lm):
    with pytest.raises(LmforgeError, match="stride"):
        perplexity(tiny_lm, "some text", context=16, stride=32)
    with pytest.raises(LmforgeError, match="context"):
        perplexity(tiny_lm, "some text", context=10_000)
    with pytest.raises(LmforgeError, match="empty"):
        perplexity(tiny_lm, "  \n")


def test_empty_context_starts_from_separator_and_empty_choice_scores_zero(tiny_lm):
    (row,) = score_choices(tiny_lm, [ChoiceRequest("", ["abc", ""])])
    ids = [256, *b"abc"]  # the end-of-text separator, then the continuation
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm.model(torch.tensor([ids])).double(), dim=-1)[0]
    assert row[0] == pytest.approx(sum(float(logp[t - 1, ids[t]]) for t in range(1, 4)), abs=1e-4)
    assert row[1] == 0.0


def test_model_judge_mechanics(tiny_lm):
    from lmforge.eval.judges import ModelJudge

    judge = ModelJudge(tiny_lm)
    pairs = [("The sky is blue.", "The sky is blue."), ("Grass is green.", "Cats fly.")]
    verdicts = judge.supports_batch(pairs)
    assert len(verdicts) == 2 and all(isinstance(v, bool) for v in verdicts)
    # the verdict is exactly "log p(Yes) > log p(No)" for the verification prompt
    context, delim, special = judge._context(*pairs[0])
    (yes, no), _ = score_choices(
        tiny_lm, [ChoiceRequest(context, [delim + "Yes", delim + "No"], special)] * 2
    )
    assert verdicts[0] == (yes > no)
