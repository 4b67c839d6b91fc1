"""ModelHandle: a loaded model and everything that travels with it, as one object.

    handle = load_model(DEFAULT_MODEL, precision="auto", quantize="auto")
    handle.model, handle.tokenizer, handle.config, handle.chat_template
    ChatModel(handle); EvalModel(handle); Generator(handle.model, handle.tokenizer)

Chat, evaluation, generation and (next) training and serving take what they need from it, so a
checkpoint is read once and no room re-derives the name, the template or the precision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmforge.model import ModelConfig, Transformer


@dataclass
class ModelHandle:
    name: str  # what the user asked for: a registered name or a path
    path: Path | None  # the file or directory read (None: a model built in memory)
    config: ModelConfig
    model: Transformer  # in eval mode
    tokenizer: Any | None  # None when the checkpoint carries none
    chat_template: str | None = None  # the tokenizer's template (None: a base model)
    precision: torch.dtype = torch.float32  # dtype of the float weights
    quantization: str | None = None  # "int4", "int8", "fp16" or None (float weights)

    @classmethod
    def of(
        cls, model: Transformer, tokenizer: Any | None = None, name: str = "model"
    ) -> ModelHandle:
        """A handle around a model already in memory (tests, a freshly trained model)."""
        return cls(
            name=name,
            path=None,
            config=model.config,
            model=model,
            tokenizer=tokenizer,
            chat_template=getattr(tokenizer, "chat_template", None),
            precision=model.tok_embeddings.weight.dtype,
            quantization=getattr(model, "quantization", None),
        )

    def __iter__(self) -> Iterator[Any]:
        # `model, tokenizer = load_model(...)` keeps working where only the two are needed
        yield self.model
        yield self.tokenizer
