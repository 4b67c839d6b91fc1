"""Speculative decoding: a small draft model proposes k tokens, the target checks them in one pass.

    spec = SpeculativeGenerator(target, draft, tokenizer, k=4)
    spec.generate("Once upon a time", SamplingParams(max_new_tokens=64))

Greedy: a draft token is kept while it equals the target's argmax; the first mismatch is replaced
by the target's choice, so the output is exactly plain greedy decoding of the target.

Sampling (Leviathan et al. 2023; Chen et al. 2023): draft token x drawn from q is kept with
probability min(1, p(x) / q(x)); on the first rejection the token is drawn from
norm(max(0, p - q)) instead; if all k are kept, one more token comes from p. Each emitted token
is then distributed exactly as the target's p (tested statistically on a tiny vocabulary).

The draft must share the target's vocabulary. Both models keep their own KV cache; rolling back
rejected tokens is free, because a query at slot s never sees cache slots past s, and the next
round simply overwrites them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.generate.engine import CACHE_ROUNDING, GenerationResult
from lmforge.generate.sampling import SamplingParams, make_generators, process_logits
from lmforge.generate.text_stream import TextStream


def accept_draft(
    target_logits: torch.Tensor,  # [k+1, V] processed target logits at each draft position
    draft_logits: torch.Tensor,  # [k, V] processed draft logits the draft tokens were drawn from
    draft_tokens: Sequence[int],  # [k]
    greedy: bool,
    generator: torch.Generator | None = None,
) -> list[int]:
    """The tokens one speculative round emits: the kept draft prefix plus one target token."""
    if greedy:
        choice = target_logits.argmax(-1).tolist()  # [k+1]
        out = []
        for i, d in enumerate(draft_tokens):
            if d != choice[i]:
                return [*out, choice[i]]
            out.append(d)
        return [*out, choice[len(draft_tokens)]]
    p = target_logits.float().softmax(-1)
    q = draft_logits.float().softmax(-1)
    u = torch.rand(len(draft_tokens), generator=generator).tolist()
    out = []
    for i, d in enumerate(draft_tokens):
        if u[i] * float(q[i, d]) <= float(p[i, d]):  # u < p/q without dividing by zero
            out.append(d)
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        if float(residual.sum()) <= 0:  # p == q up to rounding: p itself is the residual
            residual = p[i]
        return [*out, int(torch.multinomial(residual, 1, generator=generator))]
    return [*out, int(torch.multinomial(p[len(draft_tokens)], 1, generator=generator))]


def truncated_draft(model: torch.nn.Module, n_layers: int) -> torch.nn.Module:
    """A draft model made of the first n_layers blocks of `model` (embeddings shared, blocks
    copied so each model keeps its own KV cache)."""
    from lmforge.model import Transformer

    if not 0 < n_layers <= len(model.layers):
        raise LmforgeError(f"draft layers must be in 1..{len(model.layers)}, got {n_layers}")
    config = dataclasses.replace(model.config, n_layers=n_layers)
    with torch.device("meta"):
        draft = Transformer(config)
    for shared in ("tok_embeddings", "pos_embeddings", "output", "norm"):
        if hasattr(model, shared):
            setattr(draft, shared, getattr(model, shared))
    draft.layers = torch.nn.ModuleList(copy.deepcopy(model.layers[i]) for i in range(n_layers))
    for layer in draft.layers:
        layer.attention.kv_cache = None
    draft.init_buffers()
    return draft.eval()


class SpeculativeGenerator:
    """Greedy or sampled generation of `target`, accelerated by proposals from `draft` (batch 1)."""

    def __init__(
        self, target: torch.nn.Module, draft: torch.nn.Module, tokenizer: Any, k: int = 4
    ) -> None:
        if target.config.vocab_size != draft.config.vocab_size:
            raise LmforgeError(
                f"draft vocabulary ({draft.config.vocab_size}) differs from the target's "
                f"({target.config.vocab_size})"
            )
        if k < 1:
            raise LmforgeError(f"speculative k must be >= 1, got {k}")
        self.target, self.draft, self.tokenizer, self.k = target, draft, tokenizer, k
        self.context_length = min(target.config.max_seq_len, draft.config.max_seq_len)
        self.stats = {"rounds": 0, "proposed": 0, "accepted": 0}

    def generate(
        self, prompt: str | Sequence[int], params: SamplingParams | None = None
    ) -> GenerationResult:
        params = params or SamplingParams()
        stream = TextStream(self.tokenizer, params.stop)
        ids: list[int] = []
        reason = "length"
        for tok, finish in self._tokens(prompt, params, stream):
            ids.append(tok)
            reason = finish or reason
        stream.flush()
        n_prompt = self._prompt_len
        return GenerationResult(stream.text, ids, [], reason, n_prompt)

    def stream(
        self, prompt: str | Sequence[int], params: SamplingParams | None = None
    ) -> Iterator[str]:
        params = params or SamplingParams()
        stream = TextStream(self.tokenizer, params.stop)
        before = ""
        for _ in self._tokens(prompt, params, stream):
            if len(stream.text) > len(before):
                yield stream.text[len(before) :]
                before = stream.text
        tail = stream.flush()
        if tail:
            yield tail

    # -- the loop -----------------------------------------------------------------------------
    def _encode(self, prompt: str | Sequence[int]) -> list[int]:
        ids = (
            self.tokenizer.encode(prompt, allowed_special="all")
            if isinstance(prompt, str)
            else list(prompt)
        )
        if not ids:
            raise LmforgeError("empty prompt")
        if len(ids) >= self.context_length:
            raise LmforgeError(
                f"prompt is {len(ids)} tokens, but the model's context is {self.context_length} tokens"
            )
        return [int(i) for i in ids]

    @torch.inference_mode()
    def _tokens(
        self, prompt: str | Sequence[int], params: SamplingParams, stream: TextStream
    ) -> Iterator[tuple[int, str | None]]:
        if params.uses_penalties:
            raise LmforgeError(
                "repetition/presence/frequency penalties are not supported with speculative decoding"
            )
        seq = self._encode(prompt)
        self._prompt_len = len(seq)
        budget = min(params.max_new_tokens, self.context_length - len(seq))
        if budget <= 0:
            return
        length = min(
            -(-(len(seq) + budget + self.k + 1) // CACHE_ROUNDING) * CACHE_ROUNDING,
            self.context_length,
        )
        for m in (self.target, self.draft):
            m.setup_cache(1, length, m.tok_embeddings.weight.dtype)
        gen = None if params.greedy else make_generators(params.seed, 1)[0]
        stop_ids = {int(i) for i in params.stop_token_ids}
        eos = getattr(self.tokenizer, "eos_id", None)
        if eos is not None and not params.ignore_eos:
            stop_ids.add(int(eos))

        # invariant: both caches hold slots 0..len(seq)-2 (every token but the last)
        if len(seq) > 1:
            prefix = torch.tensor([seq[:-1]])
            for m in (self.target, self.draft):
                m(prefix, torch.arange(len(seq) - 1), last_only=True)
        draft_len = len(seq) - 1  # draft cache slots filled with tokens of seq
        produced = 0
        try:
            while produced < budget:
                k = min(self.k, budget - produced, self.context_length - len(seq) - 1)
                k = max(k, 0)
                # 1. the draft proposes k tokens
                feed = seq[draft_len:]
                drafts: list[int] = []
                draft_logits = []
                for _ in range(k):
                    pos = torch.arange(draft_len, draft_len + len(feed))
                    logits = self.draft(torch.tensor([feed]), pos, last_only=True)[0, -1:]
                    draft_len += len(feed)
                    lg = process_logits(logits, params)
                    tok = (
                        int(lg.argmax(-1))
                        if params.greedy
                        else int(torch.multinomial(lg.softmax(-1)[0], 1, generator=gen))
                    )
                    drafts.append(tok)
                    draft_logits.append(lg[0])
                    feed = [tok]
                # 2. the target scores the last token and all proposals in one pass
                start = len(seq) - 1
                block = torch.tensor([[seq[-1], *drafts]])
                t_logits = self.target(block, torch.arange(start, start + k + 1))[0]  # [k+1, V]
                t_logits = process_logits(t_logits, params)
                q_logits = torch.stack(draft_logits) if drafts else t_logits[:0]
                emitted = accept_draft(t_logits, q_logits, drafts, params.greedy, gen)
                n_kept = len(emitted) - 1
                self.stats["rounds"] += 1
                self.stats["proposed"] += k
                self.stats["accepted"] += n_kept
                # the draft's cache is valid for seq plus the kept proposals it has consumed
                draft_len = min(draft_len, len(seq) + n_kept)
                for tok in emitted:
                    seq.append(tok)
                    produced += 1
                    if tok in stop_ids:
                        yield tok, "stop"
                        return
                    stream.push(tok)
                    if stream.stopped:
                        yield tok, "stop"
                        return
                    yield tok, None
                    if produced >= budget:
                        return
        finally:
            for m in (self.target, self.draft):
                m.reset_cache()
