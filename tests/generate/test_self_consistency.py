"""Self-consistency: answer extraction and majority vote."""

from __future__ import annotations

import pytest

from lmforge.generate import Generator, SamplingParams
from lmforge.generate.self_consistency import extract_number, majority_vote, self_consistency


@pytest.mark.parametrize(
    ("text", "answer"),
    [("so 3 + 4 = 7 apples\n#### 7", "7"), ("The answer is $1,250.00.", "1250"),
     ("First 12, then 15", "15"), ("no digits here", None), ("answer: -3.5 and 2", "-3.5")],
)  # fmt: skip
def test_extract_number(text: str, answer: str | None) -> None:
    assert extract_number(text) == answer


def test_majority_vote_ties_go_to_first_seen() -> None:
    assert majority_vote(["3", None, "4", "4", "3"]) == "3"
    assert majority_vote(["3", "4", "4"]) == "4"
    assert majority_vote([None, None]) is None


def test_self_consistency_votes_over_distinct_samples(model, tok) -> None:
    gen = Generator(model, tok)
    params = SamplingParams(max_new_tokens=12, temperature=1.0, ignore_eos=True)
    r = self_consistency(gen, "hi", n=6, params=params, extract=lambda t: t[:1] or None)
    assert len(r.samples) == 6 and sum(r.votes.values()) == 6
    assert len({tuple(s.token_ids) for s in r.samples}) > 1  # different seeds, different paths
    assert r.answer == majority_vote([s.text[:1] or None for s in r.samples])
    again = self_consistency(gen, "hi", n=6, params=params, extract=lambda t: t[:1] or None)
    assert [s.token_ids for s in again.samples] == [s.token_ids for s in r.samples]
