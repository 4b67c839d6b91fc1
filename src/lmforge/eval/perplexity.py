"""Perplexity of a text with a sliding window.

The text is tokenised once (after a document-separator prefix token, so its first real token is
predicted too). Windows of ``context`` tokens advance by ``stride`` tokens; each window scores only the tokens
the previous window did not, so every token is predicted exactly once and, past the first
window, with at least ``context - stride`` tokens of history (the method of the Hugging Face
perplexity guide; a stride of ``context`` is taken as ``context - 1`` so that no token is
scored without any history).

Reported: perplexity per token, per word (whitespace-separated) and per byte, and bits per byte,
all from the same total negative log-likelihood:

    ppl_token = exp(NLL / tokens), ppl_word = exp(NLL / words), ppl_byte = exp(NLL / bytes)
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lmforge.errors import LmforgeError
from lmforge.eval.lm import EvalModel


@dataclass
class PerplexityResult:
    ppl: float  # per token
    tokens: int  # tokens scored
    nll: float  # total negative log-likelihood, nats
    words: int
    bytes: int
    word_ppl: float
    byte_ppl: float
    bits_per_byte: float
    context: int
    stride: int
    windows: int

    def to_dict(self) -> dict:
        return asdict(self)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, with clear errors for what a user can get wrong."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LmforgeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise LmforgeError(f"{path}: empty document, nothing to score")
    return text


def window_spans(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_scored) for each window over ids[0:n_tokens].

    ids[0] is the prefix token and is never scored. A window feeds ids[begin:end] and scores the
    targets ids[first:end], each predicted from the tokens before it inside the window. The
    first window scores everything it holds; each later one scores the next ``stride`` tokens
    (at most context - 1, so every target keeps at least one token of history in its window).
    """
    step = min(stride, context - 1)
    spans = []
    prev_end = 1
    end = min(context, n_tokens)
    while prev_end < n_tokens:
        begin = max(end - context, 0)
        spans.append((begin, end, prev_end))
        prev_end = end
        end = min(end + step, n_tokens)
    return spans


def perplexity(
    lm: EvalModel,
    text: str,
    *,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> PerplexityResult:
    """Sliding-window perplexity of ``text`` under ``lm`` (see the module docstring)."""
    context = context or min(lm.max_length, 2048)
    stride = stride or max(context // 2, 1)
    if context < 2 or context > lm.max_length:
        raise LmforgeError(f"context must be between 2 and {lm.max_length} tokens, got {context}")
    if stride < 1 or stride > context:
        raise LmforgeError(f"stride must be between 1 and the context ({context}), got {stride}")
    if not text.strip():
        raise LmforgeError("empty text: nothing to score")

    prefix = lm.prefix_token
    ids = ([prefix] if prefix is not None else []) + lm.encode(text)
    if prefix is None and len(ids) < 2:
        raise LmforgeError("text too short to score: needs at least two tokens")
    spans = window_spans(len(ids), context, stride)

    nll = 0.0
    scored = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids) - 1, desc="perplexity", unit="tok", dynamic_ncols=True)
    # windows of equal length run as one batch (all but the last usually are)
    for i in range(0, len(spans), batch_size):
        group = spans[i : i + batch_size]
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for span in group:
            by_length.setdefault(span[1] - span[0], []).append(span)
        for same in by_length.values():
            tokens = torch.tensor([ids[b:e] for b, e, _ in same], dtype=torch.long)  # [B, L]
            hidden = lm.hidden_states(tokens)  # [B, L, C]
            rows, slots, targets = [], [], []
            for r, (b, e, first) in enumerate(same):
                for t in range(first, e):  # target ids[t] is predicted at slot t-1-b
                    rows.append(r)
                    slots.append(t - 1 - b)
                    targets.append(ids[t])
            picked = hidden[torch.tensor(rows), torch.tensor(slots)]  # [N, C]
            lp = lm.logprobs_at(picked, torch.tensor(targets, dtype=torch.long))
            nll -= float(lp.double().sum())
            scored += len(targets)
            if bar is not None:
                bar.update(len(targets))
    if bar is not None:
        bar.close()

    n_words = len(re.findall(r"\S+", text))
    n_bytes = len(text.encode("utf-8"))
    return PerplexityResult(
        ppl=math.exp(nll / scored),
        tokens=scored,
        nll=nll,
        words=n_words,
        bytes=n_bytes,
        word_ppl=math.exp(nll / max(n_words, 1)),
        byte_ppl=math.exp(nll / n_bytes),
        bits_per_byte=nll / n_bytes / math.log(2),
        context=context,
        stride=stride,
        windows=len(spans),
    )
