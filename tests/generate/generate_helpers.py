"""Test helpers: a tiny random Llama-style model and a byte tokenizer."""

from __future__ import annotations

import torch

from lmforge.model import ModelConfig, Transformer
from lmforge.tokenizer import Tokenizer

EOS = 256


def byte_tokenizer() -> Tokenizer:
    """One token per byte plus <eos> (256): lets tests split UTF-8 characters at will."""
    return Tokenizer({i: bytes([i]) for i in range(256)}, special_tokens={"<eos>": EOS}, eos_id=EOS)


def tiny_model(
    seed: int = 0, n_layers: int = 3, vocab_size: int = 257, std: float = 0.3
) -> Transformer:
    """A random model whose next-token distributions are far from uniform (std 0.3, not 0.02)."""
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab_size, dim=64, n_layers=n_layers, n_heads=4, n_kv_heads=2, max_seq_len=96
    )
    model = Transformer(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, std)
    return model
