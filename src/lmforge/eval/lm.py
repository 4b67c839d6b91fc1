"""The model under evaluation: a causal LM plus its tokenizer, behind one small adapter.

Evaluation needs four things from a model: encode text, know the longest sequence it takes,
run a forward pass with explicit positions and an attention mask (to score several
continuations against one shared context in a single pass), and the final-layer hidden states
(so the vocabulary projection runs only where a log-likelihood is needed, not on every context
token). ``EvalModel`` provides them on top of ``lmforge.model.Transformer``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.errors import LmforgeError

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise LmforgeError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}") from None


@dataclass
class EvalModel:
    """A causal language model and its tokenizer, as the evaluators use them."""

    model: Any  # lmforge.model.Transformer (or anything with the same forward contract)
    tokenizer: Any  # lmforge.tokenizer.Tokenizer
    name: str = "model"

    def __post_init__(self) -> None:
        self.model.eval()

    # -- text ---------------------------------------------------------------------------------
    def encode(self, text: str, special: bool = False) -> list[int]:
        """Token ids of text. Special-token strings in data are plain text unless ``special``
        (for prompts built with the chat template, whose markers must be the special tokens)."""
        return list(self.tokenizer.encode(text, allowed_special="all" if special else "none"))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    @property
    def max_length(self) -> int:
        config = getattr(self.model, "config", None)
        return int(getattr(config, "max_seq_len", 2048))

    @property
    def prefix_token(self) -> int | None:
        """The token a document starts after, so its first real token gets a prediction too.

        The end-of-text separator the model was pretrained with where the tokenizer has one,
        else BOS, else EOS (lm-evaluation-harness uses the EOT token the same way).
        """
        special = getattr(self.tokenizer, "special_tokens", None) or {}
        for name in ("<|endoftext|>", "<|end_of_text|>", "</s>"):
            if name in special:
                return int(special[name])
        for attr in ("bos_id", "eos_id"):
            value = getattr(self.tokenizer, attr, None)
            if value is not None:
                return int(value)
        return None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- forward ------------------------------------------------------------------------------
    @torch.inference_mode()
    def hidden_states(
        self,
        tokens: torch.Tensor,  # [B, T] int64
        positions: torch.Tensor | None = None,  # [B, T] int64
        mask: torch.Tensor | None = None,  # [B, 1, T, T] bool, True = may attend
    ) -> torch.Tensor:
        """Final normalised hidden states [B, T, C] (the input of the vocabulary projection)."""
        if getattr(self.model, "cache_len", 0):
            # a generator left its KV cache attached; scoring is a cache-less forward (the
            # generator notices and sets a cache up again when it next runs)
            self.model.reset_cache()
        with _without_output_head(self.model):
            return self.model(tokens, positions=positions, mask=mask)

    @torch.inference_mode()
    def logprobs_at(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for hidden states [N, C] and target ids [N] -> [N] float32."""
        logits = self.model.output(hidden).float()  # [N, V]
        return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]


@contextlib.contextmanager
def _without_output_head(model: Any) -> Iterator[None]:
    """Run the model with its vocabulary projection replaced by identity.

    Scoring needs logits only at continuation positions; projecting every context token onto
    the 49k-entry vocabulary would cost a fifth of the compute and gigabytes of memory.
    """
    head = model.output
    model.output = torch.nn.Identity()
    try:
        yield
    finally:
        model.output = head


def load_eval_model(spec: str, dtype: str | torch.dtype = "float32") -> EvalModel:
    """Load a registered model name or a checkpoint path through lmforge.checkpoint."""
    try:
        from lmforge.checkpoint import load_model
    except ImportError as exc:  # the checkpoint room is not installed in this build
        raise LmforgeError(
            f"cannot load model {spec!r}: lmforge.checkpoint unavailable ({exc})"
        ) from exc
    try:
        model, tokenizer = load_model(spec, dtype=resolve_dtype(dtype))
    except LmforgeError:
        raise
    except (FileNotFoundError, OSError) as exc:
        raise LmforgeError(f"cannot load model {spec!r}: {exc}") from exc
    return EvalModel(model=model, tokenizer=tokenizer, name=str(spec))
