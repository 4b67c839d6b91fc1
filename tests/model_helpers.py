"""Shared test helpers: tiny random Transformers of every family, and a byte tokenizer.

Imported by the model, checkpoint, generate and eval tests as `from model_helpers import ...`
(pytest puts tests/ on sys.path for tests/conftest.py). The models are seeded, so a test gets the
same weights on every run.
"""

from __future__ import annotations

from typing import Any

import torch

from lmforge.model import ModelConfig, Transformer
from lmforge.tokenizer import Tokenizer

TINY = dict(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)

# ModelConfig overrides of each family the Transformer covers
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {},
    "qwen2": dict(qkv_bias=True, tie_embeddings=False, rope_theta=1e6),
    "gpt2": dict(norm="layernorm", mlp="gelu", pos="learned", bias=True, n_kv_heads=4),
    "moe": dict(n_experts=4, n_experts_per_token=2),
    "window": dict(sliding_window=5),
}

EOS = 256  # byte_tokenizer's end of text


def tiny(
    seed: int = 0, *, std: float | None = None, perturb: bool = False, **overrides: Any
) -> Transformer:
    """A small random model in eval mode: TINY with `overrides` (e.g. `**FAMILIES["gpt2"]`).

    std: re-draw every non-norm weight from N(0, std) (0.3 makes next-token distributions far
        from uniform, which sampling tests need). perturb: add noise to norms and biases, so
        that a mix-up of them in a file format shows.
    """
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if std is not None and "norm" not in name:
                p.normal_(0.0, std)
            if perturb and ("norm" in name or name.endswith("bias")):
                p.add_(0.1 * torch.randn_like(p))
    return model


def byte_tokenizer() -> Tokenizer:
    """One token per byte plus <eos> (256): lets tests split UTF-8 characters at will."""
    return Tokenizer({i: bytes([i]) for i in range(256)}, special_tokens={"<eos>": EOS}, eos_id=EOS)


def tiny_model(
    seed: int = 0, n_layers: int = 3, vocab_size: int = 257, std: float = 0.3
) -> Transformer:
    """The generation tests' model: a byte-vocabulary Llama whose next tokens are far from
    uniform."""
    return tiny(seed, std=std, n_layers=n_layers, vocab_size=vocab_size, max_seq_len=96)
