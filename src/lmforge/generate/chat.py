"""ChatModel: a model handle + a Generator, the small interface RAG, eval and the CLI use.

chat = load_chat_model()          # the bundled default model; precision/quantization: fastest good
chat.chat([{"role": "user", "content": "What is RAG?"}], max_new_tokens=64)
for delta in chat.stream_chat(messages): print(delta, end="", flush=True)
chat = ChatModel(load_model(path, quantize="int8"))   # from any ModelHandle
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from lmforge.assets import DEFAULT_MODEL
from lmforge.checkpoint import ModelHandle
from lmforge.errors import LmforgeError
from lmforge.generate.engine import GenerationResult, Generator
from lmforge.generate.sampling import SamplingParams

# Special tokens that end an assistant turn in common chat formats (ChatML, Llama 3, Gemma, ...)
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>")


class ChatModel:
    """Chat over a loaded model: the chat template, end-of-turn stops, and its Generator."""

    def __init__(self, handle: ModelHandle) -> None:
        if handle.tokenizer is None:
            raise LmforgeError(f"{handle.name}: the checkpoint has no tokenizer")
        self.handle = handle
        self.generator = Generator(handle.model, handle.tokenizer)

    @property
    def model(self) -> torch.nn.Module:
        return self.handle.model

    @property
    def tokenizer(self) -> Any:
        return self.handle.tokenizer

    @property
    def spec(self) -> str:
        return self.handle.name

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, allowed_special="all"))

    @property
    def context_length(self) -> int:
        return self.generator.context_length

    def end_of_turn_ids(self) -> list[int]:
        specials = getattr(self.tokenizer, "special_tokens", {}) or {}
        return [specials[s] for s in END_OF_TURN if s in specials]

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Token ids of the conversation rendered with the chat template, ready for a reply."""
        if not messages:
            raise LmforgeError("chat needs at least one message")
        if self.handle.chat_template:
            text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True)
        else:  # a base model: plain "role: content" lines
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self.tokenizer.encode(text, allowed_special="all")

    @torch.inference_mode()
    def continuation_logprobs(self, contexts: Sequence[str], continuation: str) -> list[float]:
        """Mean log-probability per token of ``continuation`` right after each context (plain
        text, no chat template), all contexts in one right-padded batch.

        How likely a passage makes a question is a reranking signal (UPR, Sachan et al. 2022):
        the reader asks it of its best sentence windows.
        """
        if not contexts:
            return []
        cont = self.tokenizer.encode(continuation)
        prefixes = [self.tokenizer.encode(c) for c in contexts]
        rows = [p + cont for p in prefixes]
        tokens = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        if getattr(self.model, "cache_len", 0):
            self.model.reset_cache()  # a cache-less forward; the generator re-attaches its own
        hidden = self.model(tokens, full_output=True, head=False).hidden  # [B, T, C]
        # the state before each continuation token predicts it: positions len(p)-1 ... -2
        at = torch.cat([torch.arange(len(p) - 1, len(p) - 1 + len(cont)) for p in prefixes])
        batch = torch.arange(len(rows)).repeat_interleave(len(cont))
        logits = self.model.output(hidden[batch, at]).float()  # [B * len(cont), V]
        targets = torch.tensor(cont).repeat(len(rows))
        logp = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]
        return logp.view(len(rows), len(cont)).mean(-1).tolist()

    def params(
        self,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        **sampling: Any,
    ) -> SamplingParams:
        stop_ids = [*self.end_of_turn_ids(), *sampling.pop("stop_token_ids", ())]
        return SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stop=tuple(stop or ()),
            stop_token_ids=stop_ids,
            **sampling,
        )

    def chat_result(
        self, messages: Sequence[dict[str, Any]], max_new_tokens: int = 256, temperature: float = 0.0,
        stop: Sequence[str] | None = None, **sampling: Any,
    ) -> GenerationResult:  # fmt: skip
        params = self.params(max_new_tokens, temperature, stop, **sampling)
        return self.generator.generate(self.prompt_ids(messages), params)

    def chat(
        self, messages: Sequence[dict[str, Any]], max_new_tokens: int = 256, temperature: float = 0.0,
        stop: Sequence[str] | None = None, **sampling: Any,
    ) -> str:  # fmt: skip
        """The assistant's reply to the conversation (greedy by default)."""
        return self.chat_result(messages, max_new_tokens, temperature, stop, **sampling).text

    def stream_chat(
        self, messages: Sequence[dict[str, Any]], max_new_tokens: int = 256, temperature: float = 0.0,
        stop: Sequence[str] | None = None, **sampling: Any,
    ) -> Iterator[str]:  # fmt: skip
        """The reply as text deltas while it is generated."""
        params = self.params(max_new_tokens, temperature, stop, **sampling)
        yield from self.generator.stream(self.prompt_ids(messages), params)


def load_chat_model(
    spec: str | Path = DEFAULT_MODEL,
    *,
    precision: str = "auto",
    quantize: str | None = "auto",
    group_size: int = 32,
) -> ChatModel:
    """Load a chat model ready to answer (`lmforge.checkpoint.load_model`, wrapped).

    precision: "auto" (bf16 on AMX CPUs, else fp32), "fp32", "bf16" or "fp16".
    quantize: "auto" (int4 decode weights when the file's weights are Q4_0/Q4_1, with the float
        weights kept for prefill), None/"none", "int8", "int4" or "fp16" (see `load_model`).
    """
    from lmforge.checkpoint import load_model

    handle = load_model(spec, precision=precision, quantize=quantize, group_size=group_size)
    return ChatModel(handle)
