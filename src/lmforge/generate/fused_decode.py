"""Decode steps of an int4/int8 Llama-family model in one C++ call for all its blocks.

At one token per sequence a SmolLM2 block is ~40 small ops and ~15 module calls, and in eager
PyTorch their overhead costs as much as the quantized matmuls themselves. `FusedDecoder` runs the
same step's blocks in one C++ call (`lmforge.kernels.decode_layers`, which holds the blocks; per
layer: RMSNorm, q/k/v, RoPE, KV-cache write, grouped-query attention, output projection, SwiGLU,
residuals): the model's own weights and caches, the same arithmetic as its forward
(tests/generate/test_fused_decode.py checks the logits). The embedding, final norm and head stay
the model's modules.

    decoder = FusedDecoder.for_model(model)   # None unless `fused_tensors` finds it can run
    logits = decoder(tokens, input_pos, positions, mask) if decoder else model(...)[:, -1]

`Generator` keeps one across calls for its decode steps (the KV cache in float32, which the
C++ blocks write, whatever the model's precision); prefill keeps the model's forward.
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


def fused_tensors(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
    """The one capability test of fused decoding: (norm weights, linear tensors) that
    `decode_layers` runs for `model`, or None unless lmforge's kernels are built, the model is a
    Llama-family Transformer (RMSNorm, SwiGLU, RoPE, no MoE) and every block matrix is an
    int4/int8 layer on those kernels (as `quantize_model` makes them). The float precision does
    not matter: the blocks compute in float32 whatever the model's dtype."""
    if not isinstance(model, Transformer) or not kernels.available():
        return None
    c = model.config
    if not (c.norm == "rmsnorm" and c.mlp == "swiglu" and c.pos == "rope" and not c.n_experts):
        return None
    norms: list[torch.Tensor] = []
    linears: list[torch.Tensor] = []
    for block in model.layers:
        a, f = block.attention, block.feed_forward
        args = [quantized_linear_args(m) for m in (a.wqkv, a.wo, f.w1, f.w3, f.w2)]
        pair = (block.attention_norm, block.ffn_norm)
        if not all(isinstance(n, RMSNorm) for n in pair) or any(x is None for x in args):
            return None
        norms += [n.weight for n in pair]
        linears += [t for x in args for t in x]
    return norms, linears


def _version(t: torch.Tensor) -> int:
    return -1 if t.is_inference() else t._version  # inference tensors keep no counter


class FusedDecoder:
    """One decode step (T = 1) of a Transformer whose blocks all run in `decode_layers`.

    Made once and kept (by `Generator`) across calls: `matches(model)` tells whether the
    model's weights are still the ones it holds, and the C++ blocks are made again only when
    the KV cache they write was replaced.
    """

    def __init__(self, model: Transformer, norms: list[torch.Tensor], linears: list[torch.Tensor]):
        self.model, self.linears = model, linears  # 20 tensors per layer
        self._held = [*norms, *linears]  # the model's own tensors (kept: ids stay unique)
        self._key = self._signature(self._held)
        # decode_layers computes in float32: a bf16/fp16 model's norm weights are copied
        self.norms = [w.detach().float().contiguous() for w in norms]
        self._cache0: torch.Tensor | None = None  # layer 0's key cache when _layers was made
        self._layers: torch.ScriptObject | None = None

    @classmethod
    def for_model(cls, model: nn.Module) -> FusedDecoder | None:
        """A decoder for `model`, or None where `fused_tensors` says it cannot run."""
        found = fused_tensors(model)
        return None if found is None else cls(model, *found)

    @staticmethod
    def _signature(tensors: list[torch.Tensor]) -> list[tuple[int, int]]:
        return [(id(t), _version(t)) for t in tensors]

    def matches(self, model: nn.Module) -> bool:
        """True while `model` still runs on exactly the tensors (and values) held here."""
        if model is not self.model:
            return False
        found = fused_tensors(model)
        return found is not None and self._signature([*found[0], *found[1]]) == self._key

    def _blocks(self) -> torch.ScriptObject:
        """The C++ blocks over the model's current caches, made again when they were replaced
        (`setup_cache` replaces every layer's at once, so layer 0's tells)."""
        k0 = self.model.layers[0].attention.kv_cache.k
        if self._layers is None or k0 is not self._cache0:
            c, caches = self.model.config, [b.attention.kv_cache for b in self.model.layers]
            self._layers = kernels.decode_layers(
                self.norms, c.norm_eps, self.linears, [cache.k for cache in caches],
                [cache.v for cache in caches], c.n_heads, c.n_kv_heads,
            )  # fmt: skip
            self._cache0 = k0
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
        cos = model.rope_cos.index_select(0, rows).float()  # [1|B, D]
        sin = model.rope_sin.index_select(0, rows).float()
        attn_mask, _ = model.attention_mask(mask, input_pos, 1, slot + 1, tokens.device)
        x = model.tok_embeddings(tokens)  # [B, 1, C]
        y = self._blocks().forward(x.float(), cos, sin, slot, attn_mask)
        return model.output(model.norm(y.to(x.dtype)))[:, -1]
