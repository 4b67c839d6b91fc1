"""The transformer: ModelConfig (+ presets) and one Transformer for the Llama and GPT-2 families.

    from lmforge.model import ModelConfig, Transformer
    model = Transformer(ModelConfig.preset("shakespeare-char"))
    logits = model(tokens)  # [B, T] -> [B, T, vocab]
    out = model(tokens, full_output=True)  # ModelOutput(logits, hidden, aux_loss)

See docs/model.md for the forward contract (input_pos, positions, mask, KV cache).
"""

from lmforge.model.config import PRESETS, ModelConfig
from lmforge.model.transformer import KVCache, ModelOutput, Transformer

__all__ = ["PRESETS", "KVCache", "ModelConfig", "ModelOutput", "Transformer"]
