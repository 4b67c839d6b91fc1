"""Self-consistency (Wang et al. 2022): sample several reasoning paths, majority-vote the answers.

result = self_consistency(gen, "Q: ... A: Let's think step by step.", n=8)
result.answer, result.votes     # "42", Counter({"42": 5, "41": 2, None: 1})
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from lmforge.errors import LmforgeError
from lmforge.generate.engine import GenerationResult, Generator
from lmforge.generate.sampling import SamplingParams

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_MARKED = re.compile(r"(?:####|answer is|answer:)\s*(" + _NUMBER + ")", re.IGNORECASE)


def extract_number(text: str) -> str | None:
    """The final numeric answer of a reasoning text: after '####' or 'the answer is' if present,
    else the last number. Normalised: no '$', no thousands commas, no trailing '.0'."""
    marked = _MARKED.findall(text)
    numbers = marked or re.findall(_NUMBER, text)
    if not numbers:
        return None
    value = numbers[-1].replace("$", "").replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


@dataclass
class SelfConsistencyResult:
    answer: str | None  # the most common extracted answer (ties: the one seen first)
    votes: Counter  # answer -> number of samples (None = nothing could be extracted)
    samples: list[GenerationResult]


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """Most common non-None answer; ties go to the answer that appeared first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def self_consistency(
    generator: Generator,
    prompt: str | Sequence[int],
    n: int = 5,
    params: SamplingParams | None = None,
    extract: Callable[[str], str | None] = extract_number,
    seed: int = 0,
) -> SelfConsistencyResult:
    """n samples of one prompt (one batch, seeds seed..seed+n-1), answers extracted and voted."""
    if n < 1:
        raise LmforgeError(f"self-consistency needs n >= 1 samples, got {n}")
    params = params or SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=256)
    if params.greedy and n > 1:
        params = replace(params, temperature=0.7)  # n greedy samples would all be identical
    samples = generator.generate_batch([prompt] * n, params, seeds=[seed + i for i in range(n)])
    answers = [extract(s.text) for s in samples]
    return SelfConsistencyResult(majority_vote(answers), Counter(answers), samples)
