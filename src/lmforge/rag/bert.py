"""A BERT encoder in plain PyTorch, enough for sentence embedders like all-MiniLM-L6-v2.

The embedder used to load the model through transformers' `AutoModel`: importing transformers
and building the model from its config cost about 3 s of a cold `lmforge ask`, for a six-layer
encoder. This is the same forward pass (post-norm BERT: embeddings, then per layer
self-attention and a GELU MLP, each followed by a residual LayerNorm), read straight from the
model's safetensors file; the embeddings match sentence-transformers' (tested).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        # what this encoder implements; anything else goes through sentence-transformers
        if (
            raw.get("model_type") != "bert"
            or raw.get("hidden_act", "gelu") != "gelu"
            or raw.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise LmforgeError(
                f"{path}: not a plain BERT encoder (model_type bert, gelu, absolute positions); "
                "use --embedder st:DIR for it"
            )
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class BertEncoder:
    """Token ids -> last hidden states [B, T, D] (no pooler: sentence embedders pool themselves).

    The weights are plain tensors used through torch.nn.functional, not `nn.Module` layers: a
    module's constructor initialises its weights randomly, which imports torch._dynamo (about
    2 s) only for loading to overwrite them.
    """

    def __init__(self, cfg: BertConfig, weights: dict[str, torch.Tensor]):
        self.cfg = cfg
        self.w = weights  # this module's names (see `_rename`)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        w, b = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
        return F.layer_norm(x, w.shape, w, b, self.cfg.layer_norm_eps)

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        D, H = self.cfg.hidden_size, self.cfg.num_attention_heads
        # one segment: token type 0 everywhere
        x = F.embedding(ids, self.w["word.weight"])
        x = x + self.w["position.weight"][:T] + self.w["token_type.weight"][0]
        x = self._norm("norm", x)
        mask = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, T]: real tokens may be seen

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, H, T, D/H]
            return t.view(B, T, H, D // H).transpose(1, 2)

        for i in range(self.cfg.num_hidden_layers):
            p = f"layers.{i}"
            q, k, v = (heads(self._linear(f"{p}.{n}", x)) for n in ("query", "key", "value"))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            y = y.transpose(1, 2).reshape(B, T, D)
            x = self._norm(f"{p}.attn_norm", x + self._linear(f"{p}.attn_out", y))
            up = F.gelu(self._linear(f"{p}.up", x))
            x = self._norm(f"{p}.mlp_norm", x + self._linear(f"{p}.down", up))
        return x

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> BertEncoder:
        """The encoder of a Hugging Face BERT directory (config.json + model.safetensors)."""
        from safetensors.torch import load_file

        directory = Path(model_dir)
        weights_file = directory / "model.safetensors"
        if not weights_file.is_file() or not (directory / "config.json").is_file():
            raise LmforgeError(f"{directory}: no config.json and model.safetensors")
        cfg = BertConfig.from_file(directory / "config.json")
        return cls(cfg, _rename(load_file(str(weights_file)), cfg))


def _rename(weights: dict[str, torch.Tensor], cfg: BertConfig) -> dict[str, torch.Tensor]:
    """Hugging Face BERT weight names -> this module's."""
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "norm.weight": "embeddings.LayerNorm.weight",
        "norm.bias": "embeddings.LayerNorm.bias",
    }
    per_layer = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "up": "intermediate.dense",
        "down": "output.dense",
        "mlp_norm": "output.LayerNorm",
    }
    for i in range(cfg.num_hidden_layers):
        for ours, theirs in per_layer.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    missing = [theirs for theirs in names.values() if prefix + theirs not in weights]
    if missing:
        raise LmforgeError(f"BERT weights missing: {', '.join(missing[:3])}")
    # Copied into fresh (aligned) memory: tensors read from a safetensors file sit at arbitrary
    # offsets, and matmuls on them ran 5x slower. The embedding table is only gathered from.
    return {
        ours: weights[prefix + theirs].float()
        if ours == "word.weight"
        else weights[prefix + theirs].float().clone()
        for ours, theirs in names.items()
    }


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit-length mean of the real tokens' hidden states: [B, T, D] -> [B, D]."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1)
