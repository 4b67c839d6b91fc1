"""ChatModel: a loaded model + tokenizer + chat template, the small interface RAG and the CLI use.

chat = load_chat_model()          # the bundled default model; dtype/quantization: fastest good mode
chat.chat([{"role": "user", "content": "What is RAG?"}], max_new_tokens=64)
for delta in chat.stream_chat(messages): print(delta, end="", flush=True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmforge.assets import DEFAULT_MODEL
from lmforge.errors import LmforgeError
from lmforge.generate.engine import GenerationResult, Generator
from lmforge.generate.sampling import SamplingParams
from lmforge.hardware import cpu_has_amx

DTYPES = ("auto", "fp32", "bf16")
QUANTIZE = ("int8", "int4", "fp16")
# Special tokens that end an assistant turn in common chat formats (ChatML, Llama 3, Gemma, ...)
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>")


def resolve_mode(dtype: str, quantize: str | None) -> tuple[torch.dtype, str | None]:
    """The run dtype and quantization for the user's choice ("auto" = measured fastest good one).

    Without an explicit choice the run dtype is bf16 on AMX CPUs (prefill 5x faster) and fp32
    elsewhere (bf16 matmuls are emulated, slower). quantize "auto" is decided at load time by
    `auto_quantization`.
    """
    if dtype not in DTYPES:
        raise LmforgeError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    if quantize is not None and quantize not in (*QUANTIZE, "none", "auto"):
        raise LmforgeError(
            f"unknown quantization {quantize!r} (choose from {', '.join(QUANTIZE)}, auto or none)"
        )
    if dtype == "auto":
        run = torch.bfloat16 if cpu_has_amx() else torch.float32
    else:
        run = torch.bfloat16 if dtype == "bf16" else torch.float32
    return run, (None if quantize == "none" else quantize)


@dataclass
class ChatModel:
    model: torch.nn.Module
    tokenizer: Any
    generator: Generator
    spec: str = ""

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
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True)
        else:  # a base model: plain "role: content" lines
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self.tokenizer.encode(text, allowed_special="all")

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


def auto_quantization(path: Path) -> str | None:
    """Return "int4" for a GGUF file whose block matrices are Q4_0/Q4_1, else None (floats).

    Decode reads every weight once per token, so fewer weight bytes decode faster (measured in
    benchmarks/generate.py: on a 2-core AVX2 host int4 decodes 92.2 tok/s at batch 1, int8
    90.2, fp16 39.7, fp32 16.5). A GGUF's own Q4_0/Q4_1 blocks are used as they are, so int4
    costs nothing over the file's weights; the output head is stored in int8 (no measurable
    perplexity change on SmolLM2, see `quantize_model`'s `head`). Float checkpoints stay in
    floating point unless asked.
    """
    if not (path.is_file() and path.suffix.lower() == ".gguf"):
        return None
    from lmforge.checkpoint import read_gguf

    g = read_gguf(path)
    t = g.tensors.get("blk.0.ffn_up.weight") or g.tensors.get("blk.0.attn_output.weight")
    return "int4" if t is not None and t.qtype.name in ("Q4_0", "Q4_1") else None


def load_chat_model(
    spec: str | Path = DEFAULT_MODEL,
    dtype: str = "auto",
    quantize: str | None = "auto",
    *,
    group_size: int = 32,
) -> ChatModel:
    """Load a chat model ready to answer.

    dtype: "auto" (bf16 on AMX CPUs, else fp32), "fp32" or "bf16".
    quantize: "auto" (int4 decode weights when the file's weights are Q4_0/Q4_1, see
        `auto_quantization`, with the float weights kept for prefill), None/"none", "int8"
        (blocks of 32), "int4" (group-wise; a GGUF's Q4_0/Q4_1 blocks are used exactly) or
        "fp16" (FBGEMM).
    """
    from lmforge.checkpoint import load_model, resolve_model_path

    run_dtype, quant = resolve_mode(dtype, quantize)
    path = resolve_model_path(spec)
    model, tokenizer = load_model(path, dtype=run_dtype)
    if tokenizer is None:
        raise LmforgeError(f"{spec}: the checkpoint has no tokenizer")
    auto = quant == "auto"
    if auto:
        quant = auto_quantization(path)
    if quant is not None:
        from lmforge.model.quantize import quantize_model

        gguf = path if path.is_file() and path.suffix.lower() == ".gguf" else None
        # auto: quantized weights for decode, the float weights for prefill (long prompts)
        quantize_model(model, quant, group_size=group_size, gguf=gguf, float_prefill=auto)
    model.eval()
    return ChatModel(model, tokenizer, Generator(model, tokenizer), str(spec))
