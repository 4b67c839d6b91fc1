"""ModelConfig: every hyper-parameter of the one Transformer, plus named presets.

One dataclass covers both families the checkpoint readers load:

- Llama family (Llama, Mistral, Qwen2, SmolLM2): RMSNorm, SwiGLU, RoPE, grouped-query attention,
  optional q/k/v bias (Qwen2), optional sliding window (Mistral).
- GPT-2 family: LayerNorm, GELU (tanh approximation), learned positions, biases everywhere.

Pretraining extensions (Mixture-of-Experts, dropout, gradient checkpointing) are fields too, so a
config file or ``ModelConfig.preset(name, **overrides)`` describes any model we build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lmforge.errors import LmforgeError


@dataclass
class ModelConfig:
    # -- sizes ------------------------------------------------------------------------------
    vocab_size: int = 32000
    dim: int = 288  # model width (d_model)
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None  # None = n_heads (multi-head); fewer = grouped-query attention
    hidden_dim: int | None = None  # feed-forward width; None = 4*dim (gelu) or 8/3*dim (swiglu)
    head_dim: int | None = None  # None = dim // n_heads
    max_seq_len: int = 256  # longest sequence (RoPE table / learned position table size)

    # -- family switches -------------------------------------------------------------------
    norm: str = "rmsnorm"  # "rmsnorm" | "layernorm"
    norm_eps: float = 1e-5
    mlp: str = "swiglu"  # "swiglu" | "gelu"
    gelu_approximate: str = "tanh"  # for mlp="gelu": "tanh" (GPT-2's gelu_new) or "none"
    pos: str = "rope"  # "rope" | "learned"
    rope_theta: float = 10000.0
    # None, or a dict in Hugging Face form: {"rope_type": "linear", "factor": 8.0} or
    # {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    #  "original_max_position_embeddings": 8192}, or llama.cpp's per-pair divisors
    # {"rope_type": "freq_factors", "factors": [...]} (GGUF rope_freqs tensor)
    rope_scaling: dict[str, Any] | None = None
    tie_embeddings: bool = True  # output head shares the token embedding matrix
    qkv_bias: bool = False  # bias on the q/k/v projections only (Qwen2)
    bias: bool = False  # bias on every linear layer and LayerNorm (GPT-2)

    # -- pretraining extensions -----------------------------------------------------------
    dropout: float = 0.0  # embedding, attention and residual dropout (training only)
    n_experts: int = 0  # 0 = dense feed-forward; >1 = Mixture-of-Experts in every layer
    n_experts_per_token: int = 2  # top-k routing
    moe_aux_loss_weight: float = 0.01  # ModelOutput.aux_loss is already multiplied by this
    sliding_window: int | None = None  # attend to at most this many most recent positions
    gradient_checkpointing: bool = False  # recompute layer activations in backward (training)
    init_std: float = 0.02  # GPT-2 initialisation (residual projections scaled by 1/sqrt(2L))

    # -- provenance ------------------------------------------------------------------------
    # Which architecture name to use when writing HF/GGUF files: "llama", "mistral", "qwen2",
    # "gpt2". None = derived from the switches above (see `architecture`).
    arch: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. bos/eos ids from a checkpoint

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            self.head_dim = self.dim // self.n_heads
        if self.hidden_dim is None:
            if self.mlp == "gelu":
                self.hidden_dim = 4 * self.dim
            else:  # SwiGLU: 2/3 of 4*dim keeps the parameter count of a GELU MLP, rounded to 32
                self.hidden_dim = 32 * ((int(8 * self.dim / 3) + 31) // 32)
        self.validate()

    def validate(self) -> None:
        """Raise LmforgeError on a config that cannot build a model."""

        def bad(msg: str) -> LmforgeError:
            return LmforgeError(f"invalid model config: {msg}")

        choices = {"norm": ("rmsnorm", "layernorm"), "mlp": ("swiglu", "gelu"),
                   "pos": ("rope", "learned"), "gelu_approximate": ("tanh", "none")}  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise bad(f"{key}={getattr(self, key)!r}, expected one of {allowed}")
        for key in ("vocab_size", "dim", "n_layers", "n_heads", "max_seq_len"):
            if int(getattr(self, key)) <= 0:
                raise bad(f"{key} must be positive, got {getattr(self, key)}")
        if self.n_heads % self.n_kv_heads:
            raise bad(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.pos == "rope" and self.head_dim % 2:
            raise bad(f"RoPE needs an even head_dim, got {self.head_dim}")
        if self.n_experts == 1 or self.n_experts < 0:
            raise bad(f"n_experts must be 0 (dense) or >= 2, got {self.n_experts}")
        if self.n_experts and not 1 <= self.n_experts_per_token <= self.n_experts:
            raise bad(
                f"n_experts_per_token={self.n_experts_per_token} with {self.n_experts} experts"
            )
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise bad(f"sliding_window must be positive, got {self.sliding_window}")
        if not 0.0 <= self.dropout < 1.0:
            raise bad(f"dropout must be in [0, 1), got {self.dropout}")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ("linear", "llama3", "freq_factors", "default"):
                raise bad(f"unsupported rope_scaling type {kind!r} (linear, llama3, freq_factors)")
            if kind == "freq_factors" and len(self.rope_scaling["factors"]) != self.head_dim // 2:
                raise bad(f"rope_scaling needs head_dim/2 = {self.head_dim // 2} freq factors")

    @property
    def architecture(self) -> str:
        """Architecture name for HF/GGUF export: llama, mistral, qwen2 or gpt2."""
        if self.arch:
            return self.arch
        if self.pos == "learned":
            return "gpt2"
        if self.qkv_bias:
            return "qwen2"
        if self.sliding_window:
            return "mistral"
        return "llama"

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LmforgeError(f"invalid model config: unknown keys {unknown}")
        return cls(**d)

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named configuration, e.g. ``ModelConfig.preset("gpt2-124m", dropout=0.1)``."""
        if name not in PRESETS:
            raise LmforgeError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @staticmethod
    def presets() -> list[str]:
        return list(PRESETS)


PRESETS: dict[str, dict[str, Any]] = {
    # GPT-2 small (124M), as in the OpenAI release and nanoGPT.
    "gpt2-124m": dict(
        vocab_size=50257, dim=768, n_layers=12, n_heads=12, hidden_dim=3072, max_seq_len=1024,
        norm="layernorm", mlp="gelu", pos="learned", bias=True, tie_embeddings=True,
    ),
    # A small Llama-style model (llama2.c's 15M size) with grouped-query attention.
    "llama-tiny": dict(
        vocab_size=32000, dim=288, n_layers=6, n_heads=6, n_kv_heads=2, hidden_dim=768,
        max_seq_len=256, norm="rmsnorm", mlp="swiglu", pos="rope", tie_embeddings=True,
    ),
    # Character-level Shakespeare on a CPU: nanoGPT's CPU recipe size (4 layers, 4 heads,
    # 128 wide, block 64) with the Llama recipe (RoPE, SwiGLU, RMSNorm), which learns faster at
    # this size than learned positions + GELU. SwiGLU width 352 keeps the GELU MLP's parameters.
    "shakespeare-char": dict(
        vocab_size=65, dim=128, n_layers=4, n_heads=4, hidden_dim=352, max_seq_len=64,
        norm="rmsnorm", mlp="swiglu", pos="rope", tie_embeddings=True, dropout=0.0,
    ),
    # SmolLM2-135M (the bundled model), for building it from scratch or checking shapes.
    "smollm2-135m": dict(
        vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3, hidden_dim=1536,
        max_seq_len=8192, norm="rmsnorm", norm_eps=1e-5, mlp="swiglu", pos="rope",
        rope_theta=100000.0, tie_embeddings=True,
    ),
}  # fmt: skip
