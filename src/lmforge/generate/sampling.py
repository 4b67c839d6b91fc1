"""Sampling: turn one step's logits into the next token.

Everything here is a pure function over a batch of logits [B, V] (float32), so each rule can be
tested alone. The order is the one Hugging Face's `generate` uses:

    penalties -> logit bias -> temperature -> top-k -> top-p -> min-p -> sample (or argmax)

Conventions (documented in docs/generate.md):
- repetition_penalty (CTRL / HF): every token seen so far, prompt included, has its logit divided
  by the penalty if positive, multiplied if negative.
- presence_penalty / frequency_penalty (OpenAI): subtract presence * [count > 0] +
  frequency * count, counting generated tokens only.
- logprobs are the model's own (raw) log-probabilities of the chosen token, before any of the
  rules above: what scoring and self-consistency want.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lmforge.errors import LmforgeError


@dataclass
class SamplingParams:
    """How to pick tokens and when to stop. temperature=0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: Sequence[str] = ()  # stop strings: the text is cut just before the first one
    stop_token_ids: Sequence[int] = ()  # extra stop ids (the tokenizer's eos is always one)
    ignore_eos: bool = False
    seed: int | None = None  # same seed, same output (each batch row gets its own generator)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> LmforgeError:
            return LmforgeError(f"invalid sampling parameter: {msg}")

        if self.max_new_tokens < 0:
            raise bad(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise bad(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise bad(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise bad(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise bad(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise bad(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        if any(not s for s in self.stop):
            raise bad("stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def uses_penalties(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )


# -- the rules ----------------------------------------------------------------------------------


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """logits [B, V]; seen [B, V] bool (token occurred in prompt or output)."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_presence_frequency(
    logits: torch.Tensor, counts: torch.Tensor, presence: float, frequency: float
) -> torch.Tensor:
    """logits [B, V]; counts [B, V] how often each token was generated so far."""
    if presence == 0.0 and frequency == 0.0:
        return logits
    counts = counts.to(logits.dtype)
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts


def apply_logit_bias(logits: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
    if not bias:
        return logits
    ids = torch.tensor(list(bias), dtype=torch.long, device=logits.device)
    values = torch.tensor(list(bias.values()), dtype=logits.dtype, device=logits.device)
    if int(ids.min()) < 0 or int(ids.max()) >= logits.shape[-1]:
        raise LmforgeError(f"logit_bias token id out of range [0, {logits.shape[-1]})")
    return logits.index_add(-1, ids, values.expand(logits.shape[0], -1))


def apply_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits of each row (ties at the boundary are kept)."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of most likely tokens whose probability reaches p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # probability of all strictly more likely tokens
    drop_sorted = mass_before >= p  # the most likely token has mass_before 0, so it stays
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the most likely token's."""
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def process_logits(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """All rules but the final draw: [B, V] raw logits -> [B, V] logits to sample from.

    For greedy decoding only penalties and bias matter (the warpers keep the argmax).
    """
    logits = logits.float()
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if counts is not None:
        logits = apply_presence_frequency(
            logits, counts, params.presence_penalty, params.frequency_penalty
        )
    logits = apply_logit_bias(logits, params.logit_bias)
    if params.greedy:
        return logits
    logits = logits / params.temperature
    logits = apply_top_k(logits, params.top_k)
    logits = apply_top_p(logits, params.top_p)
    return apply_min_p(logits, params.min_p)


def sample(
    logits: torch.Tensor, greedy: bool, generators: Sequence[torch.Generator] | None = None
) -> torch.Tensor:
    """Draw one token per row from processed logits [B, V] -> [B] int64.

    Each row draws from its own generator, so row i of a batch samples exactly what the same
    prompt would sample alone with the same seed.
    """
    if greedy:
        return logits.argmax(dim=-1)
    probs = logits.softmax(-1)
    if generators is None:
        return torch.multinomial(probs, 1).squeeze(-1)
    return torch.cat(
        [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    )


def make_generators(seed: int | None, n: int) -> list[torch.Generator]:
    """n generators, all seeded with `seed` (a fresh random seed when None)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    gens = []
    for _ in range(n):
        g = torch.Generator()
        g.manual_seed(seed)
        gens.append(g)
    return gens
