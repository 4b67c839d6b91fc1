"""Decode steps of an int4/int8 Llama-family model in one C++ call for all its blocks.

At one token per sequence a SmolLM2 block is ~40 small ops and ~15 module calls, and in eager
PyTorch their overhead costs as much as the quantized matmuls themselves. `FusedDecoder` runs the
same step's blocks in one C++ call (`lmforge.kernels.decode_layers`, which holds the blocks; per
layer: RMSNorm, q/k/v, RoPE, KV-cache write, grouped-query attention, output projection, SwiGLU,
residuals): the model's own weights and caches, the same arithmetic as its forward
(tests/generate/test_fused_decode.py checks the logits). The embedding, final norm and head stay
the model's modules.

    decoder = FusedDecoder.for_model(model)   # None unless the model qualifies (see below)
    logits = decoder(tokens, input_pos, positions, mask) if decoder else model(...)[:, -1]

`Generator` uses it for decode steps on its own; prefill keeps the model's forward.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge import kernels
from lmforge.model.quantize import HybridLinear, Int4Linear, Int8Linear
from lmforge.model.transformer import RMSNorm, Transformer


def quantized_linear_args(layer: nn.Module) -> list[torch.Tensor] | None:
    """The 4 tensors decode_layers takes for one linear layer, or None if it can't run it."""
    if isinstance(layer, HybridLinear):  # decode steps use its quantized half
        layer = layer.quantized
    if not isinstance(layer, (Int4Linear, Int8Linear)) or not layer.native:
        return None
    bias = kernels.EMPTY if layer.bias is None else layer.bias
    m = layer.m if isinstance(layer, Int4Linear) else kernels.EMPTY
    return [layer.qs, layer.d, m, bias]


class FusedDecoder:
    """One decode step (T = 1) of a Transformer whose blocks all run in `decode_layers`."""

    def __init__(self, model: Transformer, linears: list[torch.Tensor]) -> None:
        self.model, self.linears = model, linears  # 20 tensors per layer
        self.norms = [n.weight for b in model.layers for n in (b.attention_norm, b.ffn_norm)]
        self._attention0 = model.layers[0].attention
        self._cache0 = None  # layer 0's KV cache when `self._layers` was made
        self._layers: torch.ScriptObject | None = None

    @classmethod
    def for_model(cls, model: nn.Module) -> FusedDecoder | None:
        """A decoder for `model`, or None unless: lmforge's kernels are built, the model is a
        float32 Llama-family Transformer (RMSNorm, SwiGLU, RoPE, no MoE) and every block
        matrix is an int4/int8 layer on those kernels (as `quantize_model` makes them)."""
        if not isinstance(model, Transformer) or not kernels.available():
            return None
        c = model.config
        llama = c.norm == "rmsnorm" and c.mlp == "swiglu" and c.pos == "rope" and not c.n_experts
        if not llama or model.tok_embeddings.weight.dtype != torch.float32:
            return None
        linears = []
        for block in model.layers:
            a, f = block.attention, block.feed_forward
            args = [quantized_linear_args(m) for m in (a.wqkv, a.wo, f.w1, f.w3, f.w2)]
            norms_ok = isinstance(block.attention_norm, RMSNorm) and isinstance(
                block.ffn_norm, RMSNorm
            )
            if not norms_ok or any(x is None for x in args):
                return None
            linears += [t for x in args for t in x]
        return cls(model, linears)

    def _blocks(self) -> torch.ScriptObject:
        """The C++ blocks over the model's current caches, made again when `setup_cache` has
        replaced them (it replaces every layer's at once, so layer 0's tells)."""
        if self._layers is None or self._attention0.kv_cache is not self._cache0:
            c, caches = self.model.config, [b.attention.kv_cache for b in self.model.layers]
            self._layers = kernels.decode_layers(
                self.norms, c.norm_eps, self.linears, [cache.k for cache in caches],
                [cache.v for cache in caches], c.n_heads, c.n_kv_heads,
            )  # fmt: skip
            self._cache0 = caches[0]
        return self._layers

    def __call__(
        self,
        tokens: torch.Tensor,  # [B, 1]
        input_pos: torch.Tensor,  # [1]: the cache slot written
        positions: torch.Tensor | None,  # [B, 1] RoPE positions (None: the slot)
        mask: torch.Tensor | None,  # [B, 1, 1, S] bool: slots each row may attend to
    ) -> torch.Tensor:
        """Logits of the new token of each row: [B, V]."""
        model = self.model
        slot = int(input_pos[0])
        rows = (input_pos if positions is None else positions).reshape(-1)  # [1 or B]
        cos, sin = model.rope_cos.index_select(0, rows), model.rope_sin.index_select(0, rows)
        attn_mask, _ = model.attention_mask(mask, input_pos, 1, slot + 1, tokens.device)
        x = self._blocks().forward(model.tok_embeddings(tokens), cos, sin, slot, attn_mask)
        return model.output(model.norm(x))[:, -1]
