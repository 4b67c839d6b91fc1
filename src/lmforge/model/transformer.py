"""The Transformer: one decoder-only model for the Llama and GPT-2 families.

Read top to bottom: KVCache, Attention, RMSNorm, Block, Transformer (the feed-forward
networks live in mlp.py and moe.py). Shapes in comments use
B = batch, T = new tokens in this call, S = key/value length attended to, H = query heads,
KV = key/value heads, D = head width, C = model width (dim), V = vocabulary.

Forward contract (shared with the generate and training code):

    logits = model(tokens,        # [B, T] int64
                   input_pos,     # [T] cache slots to write (None: 0..T-1, no cache needed)
                   positions,     # [B, T] RoPE/learned positions (None: input_pos or 0..T-1)
                   mask)          # [B, 1, T, S] bool, True = may attend (None: causal)

The mask is always combined with causality over cache slots (a query written at slot p sees
slots <= p), so callers only describe what is extra: left padding, document boundaries.

    out = model(tokens, ..., full_output=True)   # ModelOutput(logits, hidden, aux_loss)
    out = model(tokens, ..., full_output=True, head=False)   # hidden states only (logits None)

`hidden` is the final normalised hidden state [B, T, C] (the head's input; evaluation projects
only the positions it scores); `aux_loss` is the MoE load-balancing loss, already weighted
(zero for a dense model).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lmforge import kernels
from lmforge.model.config import ModelConfig
from lmforge.model.mlp import FeedForward, dropout
from lmforge.model.moe import MoEFeedForward
from lmforge.model.rope import apply_rope, rope_tables

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin: [B or 1, T, 1, D]


class ModelOutput(NamedTuple):
    logits: torch.Tensor | None  # [B, T, V] ([B, 1, V] with last_only; None with head=False)
    hidden: torch.Tensor  # [B, T, C] final normalised hidden states
    aux_loss: torch.Tensor  # [] MoE load-balancing loss x moe_aux_loss_weight (0 when dense)


def use_fused_kernels(x: torch.Tensor) -> bool:
    """Inference in float32 on a CPU where lmforge's kernels build: fused decode steps apply.
    Not under torch.compile, which fuses these steps itself."""
    return (
        not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and kernels.available()
    )


class _SkipInit(torch.overrides.TorchFunctionMode):
    """Build modules without initialising their parameters: torch.nn.init's functions leave
    their tensor as it is. For models whose weights are loaded next; on the meta device the
    initialisers would otherwise run PyTorch's reference code, whose first use imports
    torch._dynamo (about a second of start-up)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


class KVCache(nn.Module):
    """Preallocated keys and values [B, KV, max_seq_len, D]; writes go to explicit slots."""

    def __init__(
        self,
        batch_size: int,
        n_kv_heads: int,
        max_seq_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (batch_size, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(
        self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # k, v: [B, KV, T, D] written at slots input_pos [T]; returns the whole cache for rows :B
        batch = k.shape[0]
        k_all, v_all = self.k, self.v
        if batch != k_all.shape[0]:  # a smaller batch uses the first rows
            k_all, v_all = k_all[:batch], v_all[:batch]
        k_all.index_copy_(2, input_pos, k.to(k_all.dtype))
        v_all.index_copy_(2, input_pos, v.to(v_all.dtype))
        return k_all, v_all


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = config.head_dim
        # q, k and v in one matmul: fewer kernel launches per decoded token
        out = (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
        self.wqkv = nn.Linear(config.dim, out, bias=config.bias or config.qkv_bias)
        self.wo = nn.Linear(self.n_heads * self.head_dim, config.dim, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = dropout(config.dropout)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,  # [B, T, C]
        rope: Rope | None,
        mask: torch.Tensor | None,  # [B or 1, 1, T, S] bool
        is_causal: bool,
        input_pos: torch.Tensor | None,  # [T]
        kv_len: int,  # S: cache slots 0..S-1 are attended to (with a cache)
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV, D = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.wqkv(x)  # [B, T, (H + 2 KV) * D]: query heads, then key heads, then values
        cache = self.kv_cache
        if T == 1 and cache is not None and cache.k.dtype == x.dtype and use_fused_kernels(x):
            # one token: RoPE, cache write and attention in one call (per-op overhead dominates)
            y = kernels.decode_attention(qkv, rope, cache.k, cache.v, kv_len - 1, H, KV, mask)
            return self.resid_dropout(self.wo(y))
        qkv = qkv.view(B, T, H + 2 * KV, D)
        qk, v = qkv.split([H + KV, KV], dim=2)
        if rope is not None:  # queries and keys rotate alike: one call for both
            qk = apply_rope(qk, *rope)
        q, k = qk.split([H, KV], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H|KV, T, D]
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(input_pos, k, v)  # [B, KV, max_seq_len, D]
            k, v = k.narrow(2, 0, kv_len), v.narrow(2, 0, kv_len)  # [B, KV, S, D]
            if k.dtype != q.dtype:  # a float32 cache (fused decoding) under a bf16/fp16 model
                k, v = k.to(q.dtype), v.to(q.dtype)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=H != KV,  # each group of H/KV query heads shares one key/value head
        )  # fmt: skip
        y = y.transpose(1, 2).reshape(B, T, H * D)  # [B, T, H*D]
        return self.resid_dropout(self.wo(y))  # [B, T, C]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fused_kernels(x):  # F.rms_norm runs as ~7 ops on CPU; this is one
            return kernels.rms_norm(x, self.weight, self.eps)
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.dim, config.norm_eps)
    return nn.LayerNorm(config.dim, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = make_norm(config)
        self.attention = Attention(config)
        self.ffn_norm = make_norm(config)
        self.moe = config.n_experts > 0
        self.feed_forward = MoEFeedForward(config) if self.moe else FeedForward(config)

    def forward(
        self,
        x: torch.Tensor,  # [B, T, C]
        rope: Rope | None,
        mask: torch.Tensor | None,
        is_causal: bool,
        input_pos: torch.Tensor | None,
        kv_len: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.attention(self.attention_norm(x), rope, mask, is_causal, input_pos, kv_len)
        if self.moe:
            out, aux = self.feed_forward(self.ffn_norm(x))
            return x + out, aux
        return x + self.feed_forward(self.ffn_norm(x)), None


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        if config.pos == "learned":
            self.pos_embeddings = nn.Embedding(config.max_seq_len, config.dim)
        self.drop = dropout(config.dropout)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = make_norm(config)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        self.cache_len = 0  # max_seq_len of the KV cache; 0 = no cache
        if self.output.weight.is_meta:  # built to be loaded into: from_state_dict does the rest
            return
        self.init_buffers()
        self.init_weights()

    # -- set-up -----------------------------------------------------------------------------
    def init_buffers(self) -> None:
        """(Re)compute the RoPE tables; needed again after building on the meta device."""
        c = self.config
        if c.pos == "rope":
            cos, sin = rope_tables(c.head_dim, c.max_seq_len, c.rope_theta, c.rope_scaling)
            self.register_buffer("rope_cos", cos, persistent=False)  # [max_seq_len, D] fp32
            self.register_buffer("rope_sin", sin, persistent=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) everywhere, residual projections /sqrt(2*layers)."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, (RMSNorm, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        # each residual stream sums 2*n_layers projections; keep its variance independent of depth
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("attention.wo.weight", "w2.weight")):
                nn.init.normal_(p, mean=0.0, std=residual_std)

    @classmethod
    def from_state_dict(
        cls,
        config: ModelConfig,
        state_dict: dict[str, torch.Tensor],
        dtype: torch.dtype | None = None,
    ) -> Transformer:
        """Build a model around existing tensors without spending time on random init."""
        with torch.device("meta"), _SkipInit():
            model = cls(config)
        state_dict = dict(state_dict)
        if config.tie_embeddings:
            state_dict.setdefault("output.weight", state_dict["tok_embeddings.weight"])
        model.load_state_dict(state_dict, strict=True, assign=True)
        if config.tie_embeddings:
            model.output.weight = model.tok_embeddings.weight
        model.init_buffers()
        if dtype is not None:
            model.to(dtype)
        return model

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.pos == "learned":
            n -= self.pos_embeddings.weight.numel()
        return n

    # -- KV cache ---------------------------------------------------------------------------
    def setup_cache(
        self, batch_size: int, max_seq_len: int | None = None, dtype: torch.dtype | None = None
    ) -> None:
        """Preallocate a KV cache of batch_size x max_seq_len slots in every layer."""
        max_seq_len = max_seq_len or self.config.max_seq_len
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(
                f"cache length {max_seq_len} > model max_seq_len {self.config.max_seq_len}"
            )
        dtype = dtype or self.tok_embeddings.weight.dtype
        device = self.tok_embeddings.weight.device
        c = self.config
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(
                batch_size, c.n_kv_heads, max_seq_len, c.head_dim, dtype, device
            )
        self.cache_len = max_seq_len

    def kv_caches(self) -> list[KVCache | None]:
        return [layer.attention.kv_cache for layer in self.layers]

    def attach_cache(self, caches: list[KVCache]) -> None:
        """Use caches made earlier by `setup_cache` (one per layer), e.g. a generator's own."""
        for layer, cache in zip(self.layers, caches, strict=True):
            layer.attention.kv_cache = cache
        self.cache_len = caches[0].k.shape[2]

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.attention.kv_cache = None
        self.cache_len = 0

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,  # [B, T] int64
        input_pos: torch.Tensor | None = None,  # [T] int64 cache slots
        positions: torch.Tensor | None = None,  # [B, T] int64
        mask: torch.Tensor | None = None,  # [B, 1, T, S] bool
        *,
        last_only: bool = False,  # only the last position's logits: [B, 1, V] (prefill)
        full_output: bool = False,  # return ModelOutput(logits, hidden, aux_loss)
        head: bool = True,  # project onto the vocabulary (False: logits None, with full_output)
    ) -> torch.Tensor | ModelOutput:
        """Logits [B, T, V], or with full_output a ModelOutput."""
        T = tokens.shape[1]
        if input_pos is None:
            input_pos = torch.arange(T, device=tokens.device)
        if positions is None:
            positions = input_pos[None]  # the same positions for every row: [1, T]
        # with a cache, slots past the furthest one written are never attended: don't read them
        kv_len = int(input_pos.max()) + 1 if self.cache_len else T

        x = self.tok_embeddings(tokens)  # [B, T, C]
        rope = None
        if self.config.pos == "rope":
            cos = self.rope_cos[positions].unsqueeze(2).to(x.dtype)  # [B|1, T, 1, D]
            sin = self.rope_sin[positions].unsqueeze(2).to(x.dtype)
            rope = (cos, sin)
        else:
            x = x + self.pos_embeddings(positions)  # [B, T, C]
        x = self.drop(x)

        attn_mask, is_causal = self.attention_mask(mask, input_pos, T, kv_len, tokens.device)
        aux_losses = []
        recompute = self.config.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            args = (x, rope, attn_mask, is_causal, input_pos, kv_len)
            if recompute:  # keep only the layer input; recompute its activations in backward
                x, aux = checkpoint(layer, *args, use_reentrant=False)
            else:
                x, aux = layer(*args)
            if aux is not None:
                aux_losses.append(aux)
        aux_loss = torch.zeros((), device=x.device)
        if aux_losses:  # mean over layers: 1.0 x weight when routing is perfectly balanced
            aux_loss = torch.stack(aux_losses).mean() * self.config.moe_aux_loss_weight

        if last_only:
            x = x[:, -1:]
        hidden = self.norm(x)  # [B, T, C]
        if not full_output:
            return self.output(hidden)  # [B, T, V]
        return ModelOutput(self.output(hidden) if head else None, hidden, aux_loss)

    def attention_mask(
        self,
        mask: torch.Tensor | None,
        input_pos: torch.Tensor,
        T: int,
        S: int,
        device: torch.device,
    ) -> tuple[torch.Tensor | None, bool]:
        """The boolean mask [B|1, 1, T, S] handed to attention, or None plus is_causal."""
        window = self.config.sliding_window
        cached = self.cache_len > 0
        if mask is None:
            if not cached and (window is None or window >= T):
                return None, True  # training fast path: SDPA's own causal mask
            if cached and T == 1 and (window is None or window >= S):
                return None, False  # one new token sees every written slot
        q_slots = input_pos if cached else torch.arange(T, device=device)  # [T]
        k_slots = torch.arange(S, device=device)  # [S]
        offset = q_slots[:, None] - k_slots[None, :]  # [T, S]: how far back each key lies
        allowed = offset >= 0
        if window is not None:
            allowed = allowed & (offset < window)
        allowed = allowed[None, None]  # [1, 1, T, S]
        if mask is not None:
            if mask.shape[-1] < S:
                raise ValueError(f"mask covers {mask.shape[-1]} key slots, need {S}")
            # a query always sees itself, so no row is fully masked (that would give NaNs)
            allowed = (mask[..., :S] & allowed) | (offset == 0)
        return allowed, False
