"""Hugging Face model directories: config.json + *.safetensors, both directions.

Reads Llama, Mistral, Qwen2, Mixtral and GPT-2 checkpoints (single file or sharded with
model.safetensors.index.json) and writes the same layout, so `transformers` loads what we save.
This is also lmforge's native checkpoint format: config.json carries an extra "lmforge" entry
with the full ModelConfig (dropout, init, ...), which transformers ignores. A model that no HF
architecture can express (e.g. LayerNorm with RoPE) is written with model_type "lmforge" and our
own tensor names; only lmforge reads those.

Name mapping (ours <- HF Llama family):
    tok_embeddings            <- model.embed_tokens
    layers.i.attention.wqkv   <- cat(self_attn.q_proj, k_proj, v_proj)  (rows; bias too)
    layers.i.attention.wo     <- self_attn.o_proj
    layers.i.feed_forward.w1/w3/w2 <- mlp.gate_proj / up_proj / down_proj
    layers.i.attention_norm / ffn_norm <- input_layernorm / post_attention_layernorm
    layers.i.feed_forward.router / experts.e.w1|w2|w3 <- block_sparse_moe.gate / experts.e.w1|w2|w3
    norm, output              <- model.norm, lm_head
GPT-2 keeps q/k/v fused already (attn.c_attn) but stores linear weights as Conv1D [in, out]:
those are transposed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lmforge.errors import LmforgeError, naming
from lmforge.model import ModelConfig, Transformer

LLAMA_LIKE = ("llama", "mistral", "qwen2", "mixtral")
SUPPORTED = (*LLAMA_LIKE, "gpt2", "lmforge")

_HF_CLASS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
             "qwen2": "Qwen2ForCausalLM", "gpt2": "GPT2LMHeadModel",
             "mixtral": "MixtralForCausalLM"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# config.json <-> ModelConfig


def config_from_hf(hf: dict[str, Any], source: str | Path) -> ModelConfig:
    """ModelConfig from a parsed config.json (HF or lmforge-native)."""
    if "lmforge" in hf:  # our own checkpoint: the exact config we saved
        return ModelConfig.from_dict(hf["lmforge"])
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED:
        raise LmforgeError(
            f"{source}: unsupported model architecture {model_type!r} (supported: {', '.join(SUPPORTED[:-1])})"
        )
    if model_type == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
            raise LmforgeError(f"{source}: unsupported GPT-2 activation {act!r}")
        dim = hf["n_embd"]
        return ModelConfig(
            vocab_size=hf["vocab_size"], dim=dim, n_layers=hf["n_layer"], n_heads=hf["n_head"],
            hidden_dim=hf.get("n_inner") or 4 * dim, max_seq_len=hf.get("n_positions", 1024),
            norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), mlp="gelu",
            gelu_approximate="none" if act == "gelu" else "tanh", pos="learned", bias=True,
            tie_embeddings=hf.get("tie_word_embeddings", True), arch="gpt2",
            extra=_special_ids(hf),
        )  # fmt: skip

    if hf.get("hidden_act", "silu") != "silu":
        raise LmforgeError(f"{source}: unsupported activation {hf.get('hidden_act')!r} (silu only)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise LmforgeError(f"{source}: attention_bias/mlp_bias checkpoints are not supported")
    if model_type == "qwen2" and hf.get("use_sliding_window"):
        raise LmforgeError(f"{source}: Qwen2 per-layer sliding window is not supported")
    rope = dict(hf.get("rope_parameters") or {})  # transformers >= 5
    theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling") or (
        rope if rope.get("rope_type", "default") != "default" else None
    )
    if scaling:
        scaling = {k: v for k, v in scaling.items() if k != "rope_theta"}
        if scaling.get("rope_type", scaling.get("type")) not in ("linear", "llama3", "default"):
            raise LmforgeError(f"{source}: unsupported rope scaling {scaling}")
    return ModelConfig(
        vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        hidden_dim=hf["intermediate_size"], head_dim=hf.get("head_dim"),
        max_seq_len=hf.get("max_position_embeddings", 2048), norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu", pos="rope", rope_theta=float(theta),
        rope_scaling=scaling or None, tie_embeddings=hf.get("tie_word_embeddings", False),
        qkv_bias=model_type == "qwen2",
        sliding_window=hf.get("sliding_window") if model_type in ("mistral", "mixtral") else None,
        n_experts=hf.get("num_local_experts", 0) if model_type == "mixtral" else 0,
        n_experts_per_token=hf.get("num_experts_per_tok", 2),
        moe_aux_loss_weight=hf.get("router_aux_loss_coef", 0.01),
        arch=model_type, extra=_special_ids(hf),
    )  # fmt: skip


def _special_ids(hf: dict[str, Any]) -> dict[str, Any]:
    return {
        k: hf[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if hf.get(k) is not None
    }


def hf_architecture(config: ModelConfig) -> str:
    """The HF model_type that expresses `config` exactly, or "lmforge" when none does."""
    c = config
    if c.n_experts:
        llama_moe = c.pos == "rope" and c.norm == "rmsnorm" and c.mlp == "swiglu"
        return "mixtral" if llama_moe and not (c.bias or c.qkv_bias) else "lmforge"
    if c.pos == "learned":
        gpt2 = (c.norm == "layernorm" and c.mlp == "gelu" and c.bias and c.n_kv_heads == c.n_heads
                and c.head_dim * c.n_heads == c.dim and not c.sliding_window)  # fmt: skip
        return "gpt2" if gpt2 else "lmforge"
    scaling = (c.rope_scaling or {}).get("rope_type")
    if c.norm != "rmsnorm" or c.mlp != "swiglu" or c.bias or scaling == "freq_factors":
        return "lmforge"
    if c.qkv_bias:
        return "qwen2" if not c.sliding_window else "lmforge"
    if c.sliding_window:
        return "mistral"
    return "mistral" if c.arch == "mistral" else "llama"


def config_to_hf(config: ModelConfig) -> dict[str, Any]:
    """config.json for `config`: HF fields where an HF architecture fits, plus our own entry."""
    c = config
    arch = hf_architecture(c)
    out: dict[str, Any] = {}
    if arch == "gpt2":
        out = dict(
            n_embd=c.dim, n_layer=c.n_layers, n_head=c.n_heads, n_inner=c.hidden_dim,
            n_positions=c.max_seq_len, n_ctx=c.max_seq_len, layer_norm_epsilon=c.norm_eps,
            activation_function="gelu_new" if c.gelu_approximate == "tanh" else "gelu",
            resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
        )  # fmt: skip
    elif arch in LLAMA_LIKE:
        out = dict(
            hidden_size=c.dim, num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
            num_key_value_heads=c.n_kv_heads, head_dim=c.head_dim, intermediate_size=c.hidden_dim,
            max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, hidden_act="silu",
            rope_theta=c.rope_theta, rope_scaling=c.rope_scaling, attention_dropout=c.dropout,
            attention_bias=False, mlp_bias=False,
        )  # fmt: skip
        if arch in ("mistral", "mixtral"):
            out["sliding_window"] = c.sliding_window
        if arch == "mixtral":
            out.update(num_local_experts=c.n_experts, num_experts_per_tok=c.n_experts_per_token,
                       router_aux_loss_coef=c.moe_aux_loss_weight)  # fmt: skip
        if arch == "qwen2":
            out["use_sliding_window"] = False
    out.update(model_type=arch, vocab_size=c.vocab_size, tie_word_embeddings=c.tie_embeddings,
               torch_dtype="float32", lmforge=c.to_dict())  # fmt: skip
    if arch in _HF_CLASS:
        out["architectures"] = [_HF_CLASS[arch]]
    out.update(_special_ids(c.extra))
    return out


# ---------------------------------------------------------------------------------------------
# state dicts


def _gpt2_names(i: int) -> dict[str, str]:
    p, h = f"layers.{i}.", f"h.{i}."
    return {
        p + "attention_norm.weight": h + "ln_1.weight", p + "attention_norm.bias": h + "ln_1.bias",
        p + "attention.wqkv.weight": h + "attn.c_attn.weight", p + "attention.wqkv.bias": h + "attn.c_attn.bias",
        p + "attention.wo.weight": h + "attn.c_proj.weight", p + "attention.wo.bias": h + "attn.c_proj.bias",
        p + "ffn_norm.weight": h + "ln_2.weight", p + "ffn_norm.bias": h + "ln_2.bias",
        p + "feed_forward.w1.weight": h + "mlp.c_fc.weight", p + "feed_forward.w1.bias": h + "mlp.c_fc.bias",
        p + "feed_forward.w2.weight": h + "mlp.c_proj.weight", p + "feed_forward.w2.bias": h + "mlp.c_proj.bias",
    }  # fmt: skip


def _llama_names(i: int, n_experts: int = 0) -> dict[str, str]:
    p, h = f"layers.{i}.", f"model.layers.{i}."
    names = {
        p + "attention_norm.weight": h + "input_layernorm.weight",
        p + "attention.wo.weight": h + "self_attn.o_proj.weight",
        p + "ffn_norm.weight": h + "post_attention_layernorm.weight",
    }
    if not n_experts:
        names[p + "feed_forward.w1.weight"] = h + "mlp.gate_proj.weight"
        names[p + "feed_forward.w3.weight"] = h + "mlp.up_proj.weight"
        names[p + "feed_forward.w2.weight"] = h + "mlp.down_proj.weight"
        return names
    # Mixtral, as stored on disk (expert names happen to be ours)
    names[p + "feed_forward.router.weight"] = h + "block_sparse_moe.gate.weight"
    for e in range(n_experts):
        for w in ("w1", "w2", "w3"):
            names[p + f"feed_forward.experts.{e}.{w}.weight"] = (
                h + f"block_sparse_moe.experts.{e}.{w}.weight"
            )
    return names


def _unfuse_experts(hf: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """transformers' in-memory Mixtral layout (fused expert tensors) -> the on-disk one."""
    hf = dict(hf)
    for i in range(n_layers):
        h = f"model.layers.{i}."
        if h + "mlp.experts.gate_up_proj" not in hf:
            continue
        gate_up, down = hf.pop(h + "mlp.experts.gate_up_proj"), hf.pop(h + "mlp.experts.down_proj")
        hf[h + "block_sparse_moe.gate.weight"] = hf.pop(h + "mlp.gate.weight")
        for e in range(gate_up.shape[0]):
            gate, up = gate_up[e].chunk(2, dim=0)  # [2*hidden, dim]: gate rows, then up rows
            moe = h + f"block_sparse_moe.experts.{e}."
            hf[moe + "w1.weight"], hf[moe + "w3.weight"] = gate, up
            hf[moe + "w2.weight"] = down[e]
    return hf


def _conv1d(name: str) -> bool:  # GPT-2 Conv1D weights are stored [in, out]
    return name.endswith("weight") and any(s in name for s in ("c_attn", "c_proj", "c_fc"))


def state_dict_from_hf(
    hf: dict[str, torch.Tensor], config: ModelConfig, arch: str, source: str | Path
) -> dict[str, torch.Tensor]:
    """Our state dict from HF tensors (names as in the safetensors files)."""
    if arch == "lmforge":
        return dict(hf)
    sd: dict[str, torch.Tensor] = {}

    def take(name: str) -> torch.Tensor:
        if name not in hf:
            raise LmforgeError(f"{source}: tensor {name!r} missing from the checkpoint")
        return hf[name]

    if arch == "gpt2":
        # some GPT-2 files prefix names with "transformer.", the original release does not
        hf = {k.removeprefix("transformer."): v for k, v in hf.items()}
        sd["tok_embeddings.weight"] = take("wte.weight")
        sd["pos_embeddings.weight"] = take("wpe.weight")
        sd["norm.weight"], sd["norm.bias"] = take("ln_f.weight"), take("ln_f.bias")
        for i in range(config.n_layers):
            for ours, theirs in _gpt2_names(i).items():
                t = take(theirs)
                sd[ours] = t.t().contiguous() if _conv1d(theirs) else t
    else:
        if config.n_experts:
            hf = _unfuse_experts(hf, config.n_layers)
        sd["tok_embeddings.weight"] = take("model.embed_tokens.weight")
        sd["norm.weight"] = take("model.norm.weight")
        for i in range(config.n_layers):
            for ours, theirs in _llama_names(i, config.n_experts).items():
                sd[ours] = take(theirs)
            a = f"model.layers.{i}.self_attn."
            sd[f"layers.{i}.attention.wqkv.weight"] = torch.cat(
                [take(a + f"{x}_proj.weight") for x in "qkv"], dim=0
            )
            if config.qkv_bias:
                sd[f"layers.{i}.attention.wqkv.bias"] = torch.cat(
                    [take(a + f"{x}_proj.bias") for x in "qkv"], dim=0
                )
    if not config.tie_embeddings:
        sd["output.weight"] = take("lm_head.weight")
    return sd


def state_dict_to_hf(model: Transformer) -> dict[str, torch.Tensor]:
    """HF tensors for `model` (inverse of `state_dict_from_hf`)."""
    c = model.config
    arch = hf_architecture(c)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if c.tie_embeddings:
        sd.pop("output.weight", None)
    if arch == "lmforge":
        return sd
    out: dict[str, torch.Tensor] = {}
    if arch == "gpt2":
        out["transformer.wte.weight"] = sd["tok_embeddings.weight"]
        out["transformer.wpe.weight"] = sd["pos_embeddings.weight"]
        out["transformer.ln_f.weight"] = sd["norm.weight"]
        out["transformer.ln_f.bias"] = sd["norm.bias"]
        for i in range(c.n_layers):
            for ours, theirs in _gpt2_names(i).items():
                out["transformer." + theirs] = sd[ours].t() if _conv1d(theirs) else sd[ours]
    else:
        out["model.embed_tokens.weight"] = sd["tok_embeddings.weight"]
        out["model.norm.weight"] = sd["norm.weight"]
        sizes = [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
        for i in range(c.n_layers):
            for ours, theirs in _llama_names(i, c.n_experts).items():
                out[theirs] = sd[ours]
            a = f"model.layers.{i}.self_attn."
            for part in ("weight", "bias") if c.qkv_bias else ("weight",):
                qkv = sd[f"layers.{i}.attention.wqkv.{part}"].split(sizes, dim=0)
                for short, tensor in zip("qkv", qkv, strict=True):
                    out[a + f"{short}_proj.{part}"] = tensor
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["output.weight"]
    return out


# ---------------------------------------------------------------------------------------------
# directories


def read_hf_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise LmforgeError(f"{directory}: no config.json (not a model directory)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmforgeError(f"{path}: invalid JSON ({e})") from e


def read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a model directory: model.safetensors, or the shards its index lists."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as e:
            raise LmforgeError(f"{index}: invalid safetensors index ({e})") from e
        files = [directory / f for f in dict.fromkeys(weight_map.values())]
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise LmforgeError(f"{directory}: no *.safetensors weights found")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise LmforgeError(f"{f}: safetensors shard listed in the index is missing")
        try:
            tensors.update(load_file(f))
        except (SafetensorError, OSError, ValueError) as e:
            raise LmforgeError(f"{f}: cannot read safetensors file ({e})") from e
    return tensors


def load_hf_model(directory: str | Path, dtype: torch.dtype = torch.float32) -> Transformer:
    """A Transformer from an HF (or lmforge-native) model directory."""
    directory = Path(directory)
    hf_config = read_hf_config(directory)
    config_file = directory / "config.json"
    try:
        config = config_from_hf(hf_config, config_file)
    except LmforgeError as e:
        raise naming(config_file, e) from e
    except (KeyError, TypeError, ValueError) as e:  # a missing or mistyped hyper-parameter
        raise LmforgeError(f"{config_file}: invalid model config ({e!r})") from e
    # what we saved uses the names of the HF architecture that fits the config (see save_pretrained)
    arch = hf_architecture(config) if "lmforge" in hf_config else hf_config["model_type"]
    tensors = read_safetensors(directory)
    sd = state_dict_from_hf(tensors, config, arch, directory)
    sd = {k: v.to(dtype) for k, v in sd.items()}
    try:
        return Transformer.from_state_dict(config, sd)
    except RuntimeError as e:  # shape mismatches, unexpected keys
        first = str(e).strip().splitlines()
        raise LmforgeError(
            f"{directory}: weights do not match config.json ({' '.join(first[:3])})"
        ) from e


def save_pretrained(model: Transformer, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write an HF-compatible directory: config.json, model.safetensors, tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = config_to_hf(model.config)
    dtype = model.tok_embeddings.weight.dtype
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    tensors = {k: v.contiguous().clone() for k, v in state_dict_to_hf(model).items()}
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    generation = dict(_special_ids(model.config.extra))
    if tokenizer is not None:
        tokenizer.save(str(out))
        for key, attr in (("bos_token_id", "bos_id"), ("eos_token_id", "eos_id")):
            value = getattr(tokenizer, attr, None)  # char-level tokenizers may have neither
            if value is not None:
                generation.setdefault(key, value)
    if generation:
        (out / "generation_config.json").write_text(
            json.dumps(generation, indent=2) + "\n", encoding="utf-8"
        )
    return out
