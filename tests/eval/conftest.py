"""Fixtures for the eval tests: a tiny random model with a byte-level tokenizer stand-in.

The scorer and perplexity tests check the evaluation arithmetic (packing, masks, windows)
against plain computations on the same model, so a small random Transformer is enough and keeps
them fast. Real-model checks live in test_smollm2_parity.py (marked slow).
"""

from __future__ import annotations

import pytest
import torch

from lmforge.assets import DEFAULT_MODEL
from lmforge.checkpoint import ModelHandle
from lmforge.eval.lm import EvalModel


class ByteTokenizer:
    """UTF-8 bytes as token ids (0-255); 256 is the end-of-text token."""

    def __init__(self) -> None:
        self.special_tokens = {"<|endoftext|>": 256}
        self.bos_id = None
        self.eos_id = 256
        self.vocab_size = 257

    def encode(self, text: str, allowed_special="none_raise") -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


@pytest.fixture(scope="session")
def tiny_lm() -> EvalModel:
    from lmforge.model import ModelConfig, Transformer

    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=257, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128
    )
    model = Transformer(config)
    return EvalModel(ModelHandle.of(model, ByteTokenizer(), "tiny"))


TOY_TEXT = (
    "The sky is blue. Grass is green. Two plus two is four. Question: what is 3 plus 4?\n"
    "Answer: 3 + 4 = 7.\n#### 7\n"
) * 20


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random model with a freshly trained BPE tokenizer, saved as an HF-style directory."""
    from lmforge.checkpoint import save_pretrained
    from lmforge.model import ModelConfig, Transformer
    from lmforge.tokenizer import train_bpe

    tok = train_bpe(texts=[TOY_TEXT], vocab_size=300, special_tokens=["<|endoftext|>"])
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=2, max_seq_len=256)
    out = tmp_path_factory.mktemp("tiny-model")
    save_pretrained(Transformer(config), tok, out)
    return out


@pytest.fixture(scope="session")
def smollm2() -> EvalModel:
    """The bundled SmolLM2-135M-Instruct through lmforge.checkpoint (fp32)."""
    from lmforge.eval.lm import load_eval_model

    return load_eval_model(DEFAULT_MODEL, precision="fp32")
