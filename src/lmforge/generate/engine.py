"""The decoding loop: prefill once, then one token per step from a preallocated KV cache.

    gen = Generator(model, tokenizer)
    gen.generate("Once upon a time", SamplingParams(max_new_tokens=32)).text
    for delta in gen.stream("Hello", SamplingParams(temperature=0.7, seed=1)): print(delta, end="")
    gen.generate_batch(["a", "much longer prompt"], params)   # same tokens as one by one

Batches of prompts of different lengths are left-padded: every row writes the same cache slots,
but each row has its own RoPE positions (slot - padding) and a mask that hides its padding, so a
row computes exactly what it would alone (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.generate.fused_decode import FusedDecoder, fused_tensors
from lmforge.generate.sampling import SamplingParams, make_generators, process_logits, sample
from lmforge.generate.text_stream import TextStream

CACHE_ROUNDING = 256  # cache lengths are rounded up so consecutive calls can reuse one cache


@dataclass
class GenerationResult:
    text: str  # generated text, cut before the first stop string
    token_ids: list[int]  # generated ids (a stop id or the token completing a stop string included)
    logprobs: list[float]  # the model's log-probability of each generated token
    finish_reason: str  # "stop" (stop id or string) or "length" (max_new_tokens / context)
    prompt_tokens: int = 0


@dataclass
class StepEvent:
    """One generated token of one row, as the decoding loop produces it."""

    row: int
    token_id: int
    logprob: float
    delta: str  # text released by this token (may be empty)


@dataclass
class _Row:
    prompt: list[int]
    stream: TextStream
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None


class Generator:
    """Prefill + decode for one model and its tokenizer (batched, streaming, seeded)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context_length: int = model.config.max_seq_len
        # kept across calls: the KV cache (this generator's own, attached to the model while it
        # decodes) and the fused decoder (made again only when the model's weights change)
        self._caches: list[Any] | None = None
        self._fused: FusedDecoder | None = None

    # -- public API ---------------------------------------------------------------------------
    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt, allowed_special="all")
        else:
            ids = [int(i) for i in prompt]
        if not ids:
            bos = getattr(self.tokenizer, "bos_id", None)
            if bos is None:
                raise LmforgeError(
                    "empty prompt (and the tokenizer has no BOS token to start from)"
                )
            ids = [bos]
        if len(ids) >= self.context_length:
            raise LmforgeError(
                f"prompt is {len(ids)} tokens, but the model's context is {self.context_length} "
                "tokens (leave room for at least one new token)"
            )
        return ids

    def generate(
        self, prompt: str | Sequence[int], params: SamplingParams | None = None
    ) -> GenerationResult:
        return self.generate_batch([prompt], params)[0]

    def generate_batch(
        self,
        prompts: Sequence[str | Sequence[int]],
        params: SamplingParams | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationResult]:
        """One result per prompt. Every row samples with params.seed (so a row gives what its
        prompt gives alone), unless `seeds` gives each row its own."""
        rows = self._rows(prompts, params or SamplingParams())
        for _ in self._decode(rows, params or SamplingParams(), seeds):
            pass
        return [self._result(r) for r in rows]

    def stream(
        self, prompt: str | Sequence[int], params: SamplingParams | None = None
    ) -> Iterator[str]:
        """Text deltas as tokens arrive; never splits a UTF-8 character or leaks a stop string."""
        params = params or SamplingParams()
        rows = self._rows([prompt], params)
        for event in self._decode(rows, params):
            if event.delta:
                yield event.delta
        tail = rows[0].stream.flush()  # idempotent: "" after a stop
        if tail:
            yield tail

    def stream_events(
        self, prompts: Sequence[str | Sequence[int]], params: SamplingParams | None = None
    ) -> Iterator[StepEvent]:
        """Every generated token of every row, with its logprob and text delta."""
        params = params or SamplingParams()
        yield from self._decode(self._rows(prompts, params), params)

    # -- the loop -----------------------------------------------------------------------------
    def _rows(self, prompts: Sequence[str | Sequence[int]], params: SamplingParams) -> list[_Row]:
        if not prompts:
            raise LmforgeError("no prompts given")
        return [_Row(self.encode(p), TextStream(self.tokenizer, params.stop)) for p in prompts]

    def _stop_ids(self, params: SamplingParams) -> set[int]:
        ids = {int(i) for i in params.stop_token_ids}
        eos = getattr(self.tokenizer, "eos_id", None)
        if eos is not None and not params.ignore_eos:
            ids.add(int(eos))
        return ids

    @torch.inference_mode()
    def _decode(
        self, rows: list[_Row], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> Iterator[StepEvent]:
        B = len(rows)
        lengths = [len(r.prompt) for r in rows]
        T = max(lengths)  # prompt slots 0..T-1, left padded
        budget = min(params.max_new_tokens, self.context_length - T)
        if budget <= 0:
            for r in rows:
                r.finish_reason = "length"
            return
        self._fused = self._decoder()
        self._ensure_cache(B, T + budget)
        stop_ids = self._stop_ids(params)
        generators = None
        if not params.greedy:
            if seeds is not None:
                if len(seeds) != B:
                    raise LmforgeError(f"{len(seeds)} seeds for {B} prompts")
                generators = [make_generators(s, 1)[0] for s in seeds]
            else:
                generators = make_generators(params.seed, B)
        vocab = self.model.config.vocab_size

        pad = torch.tensor([T - n for n in lengths])  # [B] padding slots of each row
        tokens = torch.zeros(B, T, dtype=torch.long)
        for b, r in enumerate(rows):
            tokens[b, pad[b] :] = torch.tensor(r.prompt)
        padded = bool(pad.any())
        # key_ok[b, s]: slot s holds a real token of row b (not padding)
        key_ok = (torch.arange(T + budget)[None, :] >= pad[:, None]) if padded else None

        # penalties need to know what was seen (prompt + output) and generated (counts)
        seen = counts = None
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(B, vocab, dtype=torch.bool)
            for b, r in enumerate(rows):
                seen[b, torch.tensor(r.prompt)] = True
        if params.presence_penalty or params.frequency_penalty:
            counts = torch.zeros(B, vocab, dtype=torch.int32)

        # prefill: all prompt tokens at once, logits of the last position only
        input_pos = torch.arange(T)
        positions = (input_pos[None, :] - pad[:, None]).clamp(min=0) if padded else None
        mask = key_ok[:, None, None, :T] if padded else None
        logits = self._forward(tokens, input_pos, positions, mask)  # [B, V]

        active = list(range(B))
        for step in range(budget):
            raw = logits.float()
            next_ids = sample(process_logits(raw, params, seen, counts), params.greedy, generators)
            # log p(chosen) = logit - logsumexp: one pass over the vocabulary, no [B, V] output
            chosen_lp = raw.gather(-1, next_ids[:, None]).squeeze(-1) - raw.logsumexp(-1)
            ids_list, lp_list = next_ids.tolist(), chosen_lp.tolist()
            for b in list(active):
                r, tok = rows[b], ids_list[b]
                r.ids.append(tok)
                r.logprobs.append(lp_list[b])
                if tok in stop_ids:
                    r.finish_reason = "stop"
                    delta = r.stream.flush()
                else:
                    delta = r.stream.push(tok)
                    if r.stream.stopped:
                        r.finish_reason = "stop"
                yield StepEvent(b, tok, lp_list[b], delta)
                if r.finish_reason:
                    active.remove(b)
            if not active or step == budget - 1:
                break
            if seen is not None:
                seen[torch.arange(B), next_ids] = True
            if counts is not None:
                counts[torch.arange(B), next_ids] += 1
            slot = T + step
            input_pos = torch.tensor([slot])
            positions = (slot - pad)[:, None] if padded else None
            mask = key_ok[:, None, None, : slot + 1] if padded else None
            logits = self._forward(next_ids[:, None], input_pos, positions, mask)
        for r in rows:
            if r.finish_reason is None:
                r.finish_reason = "length"

    def _forward(
        self,
        tokens: torch.Tensor,
        input_pos: torch.Tensor,
        positions: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Logits of the last position of each row: [B, V]."""
        if tokens.shape[1] == 1 and self._fused is not None:
            return self._fused(tokens, input_pos, positions, mask)
        return self.model(tokens, input_pos, positions, mask, last_only=True)[:, -1]

    def _decoder(self) -> FusedDecoder | None:
        """Decode steps of a quantized Llama-family model: one C++ call for all blocks (None:
        the model's forward). The decoder of the last call while the weights are the same."""
        if self._fused is not None and self._fused.matches(self.model):
            return self._fused
        found = fused_tensors(self.model)
        return None if found is None else FusedDecoder(self.model, *found)

    def _ensure_cache(self, batch: int, length: int) -> None:
        """A KV cache of at least batch rows x length slots, attached to the model (this
        generator's own, reused across calls when it fits; another user of the model may have
        detached or replaced it meanwhile)."""
        # the fused blocks read and write float32 caches, whatever the model's precision
        dtype = torch.float32 if self._fused else self.model.tok_embeddings.weight.dtype
        length = min(-(-length // CACHE_ROUNDING) * CACHE_ROUNDING, self.context_length)
        if self._caches is not None:
            rows, _, slots, _ = self._caches[0].k.shape
            if rows >= batch and slots >= length and self._caches[0].k.dtype == dtype:
                if self.model.layers[0].attention.kv_cache is not self._caches[0]:
                    self.model.attach_cache(self._caches)
                return
        self.model.setup_cache(batch, length, dtype)
        self._caches = self.model.kv_caches()

    def release_cache(self) -> None:
        self.model.reset_cache()
        self._caches = None

    def _result(self, r: _Row) -> GenerationResult:
        r.stream.flush()  # idempotent: releases held-back text unless a stop string was hit
        return GenerationResult(
            text=r.stream.text,
            token_ids=r.ids,
            logprobs=r.logprobs,
            finish_reason=r.finish_reason or "length",
            prompt_tokens=len(r.prompt),
        )
