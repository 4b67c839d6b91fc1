"""Log-likelihood of continuations given a context, batched.

The multiple-choice tasks ask: how likely is each answer after the question? All answers of a
question share the question as context, so we pack them into one row and compute the context
once:

    slots:     [ context (Lc) | choice 1 (l1) | choice 2 (l2) | ... ]
    positions: [ 0 .. Lc-1    | Lc .. Lc+l1-1 | Lc .. Lc+l2-1 | ... ]

and the attention mask lets every choice see the context and its own earlier tokens, never
another choice. One forward pass then scores every choice exactly as if each had been run
alone after the context (``strategy="separate"`` does just that, for checking). Several
questions share a forward pass as right-padded rows, up to a token budget.

Tokenisation follows lm-evaluation-harness: trailing whitespace of the context moves to the
continuation, the context is encoded alone, and the continuation's tokens are those of
``encode(context + continuation)`` after the context's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lmforge.errors import LmforgeError
from lmforge.eval.lm import EvalModel


@dataclass
class ChoiceRequest:
    """One question: a context and the continuations to score after it."""

    context: str
    continuations: list[str]
    special: bool = False  # the context holds chat-template markers (encode them as specials)


@dataclass
class _Encoded:
    index: int  # position in the caller's list
    context: list[int]
    continuations: list[list[int]]

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(c) for c in self.continuations)


def encode_pair(
    lm: EvalModel, context: str, continuation: str, special: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) with lm-evaluation-harness's boundary handling."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = lm.encode(context + continuation, special)
    context_ids = lm.encode(context, special)
    return context_ids, whole[len(context_ids) :]


def _encode(lm: EvalModel, index: int, request: ChoiceRequest) -> _Encoded:
    pairs = [encode_pair(lm, request.context, c, request.special) for c in request.continuations]
    context = pairs[0][0] if pairs else lm.encode(request.context, request.special)
    continuations = [cont for _, cont in pairs]  # an empty one scores 0.0 (probability 1)
    if not context:  # nothing to condition on: start from the document separator
        prefix = lm.prefix_token
        if prefix is None:
            raise LmforgeError(
                f"request {index}: empty context, and the tokenizer has no BOS/EOS token to start from"
            )
        context = [prefix]
    # left-truncate the context so the longest choice still fits the model's positions
    longest = max((len(c) for c in continuations), default=0)
    budget = max(lm.max_length - longest, 1)
    return _Encoded(index, context[-budget:], continuations)


def score_choices(
    lm: EvalModel,
    requests: Sequence[ChoiceRequest],
    *,
    batch_tokens: int = 2048,
    strategy: str = "packed",
    min_shared_prefix: int = 64,
    progress: bool = False,
) -> list[list[float]]:
    """Sum of log-probabilities of each continuation given its context.

    Returns ``scores[i][j]`` = log p(continuations[j] | context) for request i.
    ``strategy``: "packed" (one row per question, context computed once) or "separate"
    (one right-padded row per choice, the plain way; slower, used for cross-checks).
    With "packed", when every context starts with the same ``min_shared_prefix`` tokens or
    more (a few-shot primer), that prefix is also computed once per batch: the batch becomes
    one row ``[prefix | rest of question 1 | its choices | rest of question 2 | ...]``.
    """
    if strategy not in ("packed", "separate"):
        raise ValueError(f"unknown strategy {strategy!r}")
    encoded = [_encode(lm, i, r) for i, r in enumerate(requests)]
    shared = 0
    if strategy == "packed" and len(encoded) > 1:
        shared = _common_prefix([e.context for e in encoded])
        shared = min(shared, min(len(e.context) for e in encoded) - 1)  # keep >= 1 own token
        if shared < min_shared_prefix:
            shared = 0
    if strategy == "separate":  # every choice becomes its own one-choice request
        encoded = [
            _Encoded(e.index * 10_000 + j, e.context, [cont])
            for e in encoded
            for j, cont in enumerate(e.continuations)
        ]

    def cost(batch: list[_Encoded]) -> int:  # tokens the forward pass will hold
        if shared:
            return shared + sum(e.length - shared for e in batch)
        return len(batch) * batch[0].length  # right-padded rows, longest first

    # longest first: similar lengths share a batch (less padding), and memory peaks early
    order = sorted(encoded, key=lambda e: -e.length)
    results: dict[int, list[float]] = {}
    bar = _progress(len(requests), progress)
    batch: list[_Encoded] = []
    for item in order:
        if batch and cost([*batch, item]) > batch_tokens:
            results.update(_score_batch(lm, batch, shared))
            bar.update(_questions_done(batch, strategy))
            batch = []
        batch.append(item)
    if batch:
        results.update(_score_batch(lm, batch, shared))
        bar.update(_questions_done(batch, strategy))
    bar.close()
    if strategy == "separate":
        return [
            [results[i * 10_000 + j][0] for j in range(len(r.continuations))]
            for i, r in enumerate(requests)
        ]
    return [results[i] for i in range(len(requests))]


def _common_prefix(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


def _questions_done(batch: list[_Encoded], strategy: str) -> int:
    if strategy == "packed":
        return len(batch)
    return sum(1 for e in batch if e.index % 10_000 == 0)


@dataclass
class _Row:
    """One packed sequence: its tokens, RoPE positions, [T, T] attention mask, and where each
    continuation token's prediction is read: (slot that predicts it, target id, owner)."""

    tokens: list[int]
    positions: list[int]
    mask: torch.Tensor
    slots: list[int]
    targets: list[int]
    owners: list[tuple[int, int]]  # (request index, continuation index)


def _build_row(prefix: list[int], items: list[_Encoded]) -> _Row:
    """[prefix | item 1's own context | its continuations | item 2's own context | ...].

    Each item's context sees the prefix and itself; each continuation sees the prefix, its
    item's context and its own earlier tokens; positions continue from the prefix for every
    item and restart after the item's context for every continuation.
    """
    L = len(prefix)
    T = L + sum(e.length - L for e in items)
    tokens, positions = list(prefix), list(range(L))
    mask = torch.zeros(T, T, dtype=torch.bool)
    mask[:L, :L] = torch.ones(L, L, dtype=torch.bool).tril()
    slots, targets, owners = [], [], []
    for e in items:
        own = e.context[L:]
        a = len(tokens)  # first slot of this item's own context
        tokens += own
        positions += range(L, L + len(own))
        b = len(tokens)
        mask[a:b, :L] = True
        mask[a:b, a:b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        Lc = L + len(own)  # the context's length, so the continuations' first position
        for j, cont in enumerate(e.continuations):
            start = len(tokens)
            end = start + len(cont)
            tokens += cont
            positions += range(Lc, Lc + len(cont))
            mask[start:end, :L] = True  # the shared prefix
            mask[start:end, a:b] = True  # the item's own context
            mask[start:end, start:end] = torch.ones(
                end - start, end - start, dtype=torch.bool
            ).tril()
            # token k is predicted by the slot before it: the context's last slot for k = 0
            slots += [b - 1, *range(start, end - 1)][: len(cont)]
            targets += cont
            owners += [(e.index, j)] * len(cont)
    return _Row(tokens, positions, mask, slots, targets, owners)


def _score_batch(lm: EvalModel, batch: list[_Encoded], shared: int = 0) -> dict[int, list[float]]:
    if shared:
        rows = [_build_row(batch[0].context[:shared], batch)]
    else:
        rows = [_build_row([], [e]) for e in batch]
    B, T = len(rows), max(len(r.tokens) for r in rows)
    tokens = torch.zeros(B, T, dtype=torch.long)
    positions = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, 1, T, T, dtype=torch.bool)  # padding sees nothing (the model adds self)
    row_ids, slots, targets, owners = [], [], [], []
    for b, r in enumerate(rows):
        n = len(r.tokens)
        tokens[b, :n] = torch.tensor(r.tokens)
        positions[b, :n] = torch.tensor(r.positions)
        mask[b, 0, :n, :n] = r.mask
        row_ids += [b] * len(r.slots)
        slots += r.slots
        targets += r.targets
        owners += r.owners
    sums = {(e.index, j): 0.0 for e in batch for j in range(len(e.continuations))}
    if targets:
        hidden = lm.hidden_states(tokens, positions=positions, mask=mask)  # [B, T, C]
        picked = hidden[torch.tensor(row_ids), torch.tensor(slots)]  # [N, C]
        logprobs = lm.logprobs_at(picked, torch.tensor(targets, dtype=torch.long))
        for owner, lp in zip(owners, logprobs.double().tolist(), strict=True):
            sums[owner] += lp
    return {e.index: [sums[(e.index, j)] for j in range(len(e.continuations))] for e in batch}


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="scoring", unit="q", dynamic_ncols=True)
