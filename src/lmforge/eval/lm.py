"""The model under evaluation: a model handle behind one small adapter.

Evaluation needs four things from a model: encode text, know the longest sequence it takes,
run a forward pass with explicit positions and an attention mask (to score several
continuations against one shared context in a single pass), and the final-layer hidden states
(so the vocabulary projection runs only where a log-likelihood is needed, not on every context
token: the forward's ``head=False``). ``EvalModel`` provides them on top of a
``lmforge.checkpoint.ModelHandle``.
"""

from __future__ import annotations

from typing import Any

import torch

from lmforge.checkpoint import ModelHandle
from lmforge.errors import LmforgeError


class EvalModel:
    """A causal language model and its tokenizer, as the evaluators use them."""

    def __init__(self, handle: ModelHandle | Any, tokenizer: Any = None, name: str | None = None):
        # EvalModel(handle); EvalModel(model, tokenizer, name=...) wraps a model in memory
        if not isinstance(handle, ModelHandle):
            handle = ModelHandle.of(handle, tokenizer, name or "model")
        self.handle = handle
        self.name = name or handle.name
        self.model.eval()

    @property
    def model(self) -> Any:
        return self.handle.model

    @property
    def tokenizer(self) -> Any:
        return self.handle.tokenizer

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
            # generator keeps its cache and attaches it again when it next runs)
            self.model.reset_cache()
        out = self.model(tokens, positions=positions, mask=mask, full_output=True, head=False)
        return out.hidden

    @torch.inference_mode()
    def logprobs_at(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for hidden states [N, C] and target ids [N] -> [N] float32."""
        logits = self.model.output(hidden).float()  # [N, V]
        return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]


def load_eval_model(spec: str, precision: str | torch.dtype = "fp32") -> EvalModel:
    """Load a registered model name or a checkpoint path, with float weights."""
    from lmforge.checkpoint import load_model

    try:
        handle = load_model(spec, precision=precision)
    except LmforgeError:
        raise
    except (FileNotFoundError, OSError) as exc:
        raise LmforgeError(f"cannot load model {spec!r}: {exc}") from exc
    return EvalModel(handle)
