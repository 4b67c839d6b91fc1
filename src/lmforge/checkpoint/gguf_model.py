"""GGUF <-> Transformer: hyper-parameters from metadata, tensor names, llama.cpp conventions.

Reading supports the llama (also Mistral and SmolLM2, which llama.cpp files as "llama"), qwen2
and gpt2 architectures, including llama-style Mixture-of-Experts (Mixtral layout). Writing
produces files llama.cpp runs: its tensor names, its hyper-parameter keys, q/k rows permuted
for interleaved RoPE in the llama architecture, and the tokenizer as tokenizer.ggml.* metadata.

llama.cpp names (ours <- GGUF):
    tok_embeddings <- token_embd           pos_embeddings <- position_embd (gpt2)
    norm <- output_norm                    output <- output (absent when tied)
    layers.i.attention_norm <- blk.i.attn_norm     layers.i.ffn_norm <- blk.i.ffn_norm
    layers.i.attention.wqkv <- blk.i.attn_q/k/v (llama, qwen2) or blk.i.attn_qkv (gpt2)
    layers.i.attention.wo <- blk.i.attn_output
    layers.i.feed_forward.w1/w3/w2 <- blk.i.ffn_gate/ffn_up/ffn_down (gpt2: ffn_up -> w1)
    MoE: feed_forward.router <- ffn_gate_inp; experts.e.w1/w3/w2 <- ffn_gate/up/down_exps[e]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.checkpoint.gguf import SUPPORTED_QTYPES, GGUFFile
from lmforge.errors import LmforgeError, naming
from lmforge.model import ModelConfig, Transformer
from lmforge.model.rope import half_to_interleaved, interleaved_to_half, rope_inv_freq

ARCHITECTURES = ("llama", "qwen2", "gpt2")
EXPERT_NAMES = (("w1", "ffn_gate_exps"), ("w3", "ffn_up_exps"), ("w2", "ffn_down_exps"))
WRITE_QTYPES = ("F32", "F16", "Q8_0")


# ---------------------------------------------------------------------------------------------
# reading


def config_from_gguf(g: GGUFFile) -> ModelConfig:
    arch, path = g.architecture, g.path
    if arch not in ARCHITECTURES:
        raise LmforgeError(
            f"{path}: unsupported architecture {arch!r} (supported: {', '.join(ARCHITECTURES)})"
        )

    def need(key: str) -> Any:
        value = g.get(key)
        if value is None:
            raise LmforgeError(f"{path}: GGUF metadata lacks {arch}.{key}")
        return value

    dim, n_heads = int(need("embedding_length")), int(need("attention.head_count"))
    if "token_embd.weight" not in g.tensors:
        raise LmforgeError(f"{path}: GGUF file has no token_embd.weight tensor")
    vocab = int(g.get("vocab_size") or g.tensors["token_embd.weight"].shape[0])
    common = dict(
        vocab_size=vocab, dim=dim, n_layers=int(need("block_count")), n_heads=n_heads,
        hidden_dim=int(need("feed_forward_length")), max_seq_len=int(g.get("context_length", 2048)),
        tie_embeddings="output.weight" not in g.tensors, arch=arch,
        extra={k: g.metadata[f"tokenizer.ggml.{k}_token_id"] for k in ("bos", "eos")
               if f"tokenizer.ggml.{k}_token_id" in g.metadata},
    )  # fmt: skip
    if arch == "gpt2":
        return ModelConfig(**common, norm="layernorm", mlp="gelu", pos="learned", bias=True,
                           norm_eps=float(g.get("attention.layer_norm_epsilon", 1e-5)))  # fmt: skip

    head_dim = int(g.get("attention.key_length") or dim // n_heads)
    if int(g.get("rope.dimension_count") or head_dim) != head_dim:
        raise LmforgeError(f"{path}: partial rotary embeddings are not supported")
    scaling = None
    kind = g.get("rope.scaling.type", "none")
    if "rope_freqs.weight" in g.tensors:  # Llama 3.1 scaling, stored as per-pair divisors
        factors = g.tensors["rope_freqs.weight"].dequantize().reshape(-1).tolist()
        scaling = {"rope_type": "freq_factors", "factors": factors}
    elif kind == "linear":
        scaling = {"rope_type": "linear", "factor": float(need("rope.scaling.factor"))}
    elif kind not in ("none", None):
        raise LmforgeError(f"{path}: unsupported rope scaling {kind!r}")
    n_experts = int(g.get("expert_count") or 0)
    return ModelConfig(
        **common, n_kv_heads=int(g.get("attention.head_count_kv") or n_heads), head_dim=head_dim,
        norm="rmsnorm", norm_eps=float(g.get("attention.layer_norm_rms_epsilon", 1e-5)),
        mlp="swiglu", pos="rope", rope_theta=float(g.get("rope.freq_base", 10000.0)),
        rope_scaling=scaling, qkv_bias="blk.0.attn_q.bias" in g.tensors,
        sliding_window=int(g.get("attention.sliding_window") or 0) or None,
        n_experts=n_experts, n_experts_per_token=int(g.get("expert_used_count") or 2),
    )  # fmt: skip


def state_dict_from_gguf(g: GGUFFile, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Dequantized float32 state dict in our names (q/k un-permuted for the llama arch)."""

    def t(name: str) -> torch.Tensor:
        if name not in g.tensors:
            raise LmforgeError(f"{g.path}: tensor {name!r} missing from the GGUF file")
        tensor = g.tensors[name]
        if tensor.qtype not in SUPPORTED_QTYPES:
            raise LmforgeError(
                f"{g.path}: tensor {name!r} has unsupported quant type {tensor.qtype.name}"
            )
        return tensor.dequantize()

    c = config
    sd = {"tok_embeddings.weight": t("token_embd.weight"), "norm.weight": t("output_norm.weight")}
    if not c.tie_embeddings:
        sd["output.weight"] = t("output.weight")
    if c.pos == "learned":
        sd["pos_embeddings.weight"] = t("position_embd.weight")
        sd["norm.bias"] = t("output_norm.bias")
    permuted = g.architecture == "llama"  # llama.cpp's converter permutes q/k for this arch only
    for i in range(c.n_layers):
        b, p = f"blk.{i}.", f"layers.{i}."
        sd[p + "attention_norm.weight"] = t(b + "attn_norm.weight")
        sd[p + "ffn_norm.weight"] = t(b + "ffn_norm.weight")
        sd[p + "attention.wo.weight"] = t(b + "attn_output.weight")
        if c.pos == "learned":  # gpt2: fused qkv, GELU MLP, biases everywhere
            sd[p + "attention.wqkv.weight"] = t(b + "attn_qkv.weight")
            sd[p + "feed_forward.w1.weight"] = t(b + "ffn_up.weight")
            sd[p + "feed_forward.w2.weight"] = t(b + "ffn_down.weight")
            for ours, theirs in (("attention_norm", "attn_norm"), ("ffn_norm", "ffn_norm"),
                                 ("attention.wqkv", "attn_qkv"), ("attention.wo", "attn_output"),
                                 ("feed_forward.w1", "ffn_up"), ("feed_forward.w2", "ffn_down")):  # fmt: skip
                sd[p + ours + ".bias"] = t(b + theirs + ".bias")
            continue
        q, k, v = t(b + "attn_q.weight"), t(b + "attn_k.weight"), t(b + "attn_v.weight")
        if permuted:
            q, k = interleaved_to_half(q, c.n_heads), interleaved_to_half(k, c.n_kv_heads)
        sd[p + "attention.wqkv.weight"] = torch.cat([q, k, v])
        if c.qkv_bias:
            qb, kb, vb = t(b + "attn_q.bias"), t(b + "attn_k.bias"), t(b + "attn_v.bias")
            if permuted:
                qb, kb = interleaved_to_half(qb, c.n_heads), interleaved_to_half(kb, c.n_kv_heads)
            sd[p + "attention.wqkv.bias"] = torch.cat([qb, kb, vb])
        if c.n_experts:
            sd[p + "feed_forward.router.weight"] = t(b + "ffn_gate_inp.weight")
            for ours, theirs in EXPERT_NAMES:
                stacked = t(b + theirs + ".weight")  # [E, out, in]
                for e in range(c.n_experts):
                    sd[p + f"feed_forward.experts.{e}.{ours}.weight"] = stacked[e]
        else:
            for ours, theirs in (("w1", "ffn_gate"), ("w3", "ffn_up"), ("w2", "ffn_down")):
                sd[p + f"feed_forward.{ours}.weight"] = t(b + theirs + ".weight")
    return sd


def gguf_to_model(g: GGUFFile, dtype: torch.dtype = torch.float32) -> Transformer:
    """A Transformer from a parsed GGUF file; inconsistent files give one clear LmforgeError."""
    try:
        config = config_from_gguf(g)
        sd = {k: v.to(dtype) for k, v in state_dict_from_gguf(g, config).items()}
        return Transformer.from_state_dict(config, sd)
    except LmforgeError as e:
        # e.g. ModelConfig.validate rejecting hyper-parameters read from a damaged header
        raise naming(g.path, e) from e
    except (ValueError, TypeError, RuntimeError, KeyError, OverflowError) as e:
        # metadata of the wrong type, shapes that contradict the hyper-parameters, ...
        detail = " ".join(str(e).split())[:200]
        raise LmforgeError(f"{g.path}: inconsistent GGUF file ({detail})") from e


# ---------------------------------------------------------------------------------------------
# writing


def _gguf_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under llama.cpp names and layouts (float32)."""
    c = model.config
    arch = gguf_architecture(c)
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    out = {
        "token_embd.weight": sd["tok_embeddings.weight"],
        "output_norm.weight": sd["norm.weight"],
    }
    if not c.tie_embeddings:
        out["output.weight"] = sd["output.weight"]
    if arch == "gpt2":
        out["position_embd.weight"] = sd["pos_embeddings.weight"]
        out["output_norm.bias"] = sd["norm.bias"]
    names = {"attention_norm": "attn_norm", "ffn_norm": "ffn_norm", "attention.wo": "attn_output"}
    if arch == "gpt2":
        names |= {
            "attention.wqkv": "attn_qkv",
            "feed_forward.w1": "ffn_up",
            "feed_forward.w2": "ffn_down",
        }
    elif not c.n_experts:
        names |= {
            "feed_forward.w1": "ffn_gate",
            "feed_forward.w3": "ffn_up",
            "feed_forward.w2": "ffn_down",
        }
    sizes = [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
    for i in range(c.n_layers):
        p, b = f"layers.{i}.", f"blk.{i}."
        for ours, theirs in names.items():
            for part in ("weight", "bias"):
                if p + f"{ours}.{part}" in sd:
                    out[b + f"{theirs}.{part}"] = sd[p + f"{ours}.{part}"]
        if arch == "gpt2":
            continue
        for part in ("weight", "bias") if c.qkv_bias else ("weight",):
            q, k, v = sd[p + f"attention.wqkv.{part}"].split(sizes)
            if arch == "llama":
                q, k = half_to_interleaved(q, c.n_heads), half_to_interleaved(k, c.n_kv_heads)
            for short, tensor in zip("qkv", (q, k, v), strict=True):
                out[b + f"attn_{short}.{part}"] = tensor
        if c.n_experts:
            out[b + "ffn_gate_inp.weight"] = sd[p + "feed_forward.router.weight"]
            for ours, theirs in EXPERT_NAMES:
                out[b + theirs + ".weight"] = torch.stack(
                    [sd[p + f"feed_forward.experts.{e}.{ours}.weight"] for e in range(c.n_experts)]
                )
    return out


def gguf_architecture(config: ModelConfig) -> str:
    """The llama.cpp architecture that runs `config`, or an LmforgeError naming what doesn't fit."""
    c = config
    if c.pos == "learned":
        mha = c.n_kv_heads == c.n_heads
        if c.norm == "layernorm" and c.mlp == "gelu" and c.bias and mha and not c.n_experts:
            return "gpt2"
    elif c.norm == "rmsnorm" and c.mlp == "swiglu" and not c.bias:
        if c.qkv_bias:
            return "qwen2" if not c.n_experts else _no_gguf("MoE with q/k/v bias")
        return "llama"
    return _no_gguf(f"norm={c.norm}, mlp={c.mlp}, pos={c.pos}, bias={c.bias}")


def _no_gguf(what: str) -> str:
    raise LmforgeError(f"cannot write GGUF: no llama.cpp architecture for this model ({what})")


def write_gguf(model: Transformer, tokenizer: Any, path: str | Path, qtype: str = "F32") -> Path:
    """Write `model` (and its tokenizer, if given) as a GGUF file llama.cpp can run.

    qtype: "F32", "F16" or "Q8_0" for the 2-D weight matrices; norms and biases stay F32, and a
    matrix whose rows are not a multiple of 32 stays F16 under Q8_0 (as llama.cpp does).
    """
    import gguf
    from gguf import GGMLQuantizationType as Q

    if qtype not in WRITE_QTYPES:
        raise LmforgeError(
            f"unsupported GGUF output type {qtype!r} (choose from {', '.join(WRITE_QTYPES)})"
        )
    c = model.config
    arch = gguf_architecture(c)
    scaling = c.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(c.extra.get("name", "lmforge model"))
    # llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0
    writer.add_file_type({"F32": 0, "F16": 1, "Q8_0": 7}[qtype])
    writer.add_block_count(c.n_layers)
    writer.add_context_length(c.max_seq_len)
    writer.add_embedding_length(c.dim)
    writer.add_feed_forward_length(c.hidden_dim)
    writer.add_head_count(c.n_heads)
    writer.add_vocab_size(c.vocab_size)
    if arch == "gpt2":
        writer.add_layer_norm_eps(c.norm_eps)
    else:
        writer.add_head_count_kv(c.n_kv_heads)
        writer.add_layer_norm_rms_eps(c.norm_eps)
        writer.add_rope_freq_base(c.rope_theta)
        writer.add_rope_dimension_count(c.head_dim)
        if c.head_dim * c.n_heads != c.dim:
            writer.add_key_length(c.head_dim)
            writer.add_value_length(c.head_dim)
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(c.rope_scaling["factor"]))
        if c.sliding_window:
            writer.add_sliding_window(c.sliding_window)
        if c.n_experts:
            writer.add_expert_count(c.n_experts)
            writer.add_expert_used_count(c.n_experts_per_token)
    if tokenizer is not None:  # tokenizer.ggml.* keys, written by the tokenizer room
        from lmforge.tokenizer.gguf import write_gguf_tokenizer

        write_gguf_tokenizer(writer, tokenizer)

    tensors = _gguf_tensors(model)
    if kind in ("llama3", "freq_factors"):
        # as llama.cpp's converter: the per-pair divisors of the frequencies, as a tensor
        plain = rope_inv_freq(c.head_dim, c.rope_theta)
        tensors["rope_freqs.weight"] = plain / rope_inv_freq(
            c.head_dim, c.rope_theta, c.rope_scaling
        )
    for name, tensor in tensors.items():
        data = tensor.contiguous().numpy()
        if data.ndim < 2 or qtype == "F32":
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == "Q8_0" and data.shape[-1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(data, Q.Q8_0), raw_dtype=Q.Q8_0)
        else:
            writer.add_tensor(name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
