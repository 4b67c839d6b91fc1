"""HF safetensors directories: parity with `transformers` in both directions."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from lmforge.checkpoint import load_model, save_pretrained
from lmforge.checkpoint.hf import load_hf_model
from lmforge.errors import LmforgeError
from lmforge.model import ModelConfig, Transformer

SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip


def hf_configs():
    return {
        "llama": transformers.LlamaConfig(**SMALL, rope_theta=5000.0, tie_word_embeddings=False),
        "llama3-rope": transformers.LlamaConfig(
            **SMALL,
            tie_word_embeddings=True,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        "llama-linear-rope": transformers.LlamaConfig(
            **SMALL, rope_scaling={"rope_type": "linear", "factor": 4.0}
        ),
        "qwen2": transformers.Qwen2Config(**SMALL, tie_word_embeddings=True),
        "mixtral": transformers.MixtralConfig(
            **SMALL, num_local_experts=4, num_experts_per_tok=2, sliding_window=8
        ),
        "mistral": transformers.MistralConfig(**SMALL, sliding_window=6, head_dim=16),
        "gpt2": transformers.GPT2Config(
            vocab_size=120,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=128,
            bos_token_id=0,
            eos_token_id=0,
        ),
    }


def random_hf_model(name: str):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        hf_configs()[name], attn_implementation="eager"
    )
    with torch.no_grad():  # HF initialises norms to 1 and biases to 0: perturb them so they matter
        for pname, p in model.named_parameters():
            if "norm" in pname or "ln_" in pname or pname.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("name", list(hf_configs()))
def test_logits_match_transformers(name, tmp_path):
    hf = random_hf_model(name)
    hf.save_pretrained(tmp_path)
    ours, tok = load_model(tmp_path)
    assert tok is None  # no tokenizer files in this directory
    tokens = torch.randint(0, 120, (2, 24))  # longer than Mistral's window of 6
    with torch.no_grad():
        expected = hf(tokens).logits
        got = ours(tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_sharded_checkpoint(tmp_path):
    hf = random_hf_model("llama")
    hf.save_pretrained(tmp_path, max_shard_size="50KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    ours = load_hf_model(tmp_path)
    tokens = torch.randint(0, 120, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(tokens).logits, atol=1e-4, rtol=0)


def test_bf16_load(tmp_path):
    hf = random_hf_model("qwen2")
    hf.save_pretrained(tmp_path)
    ours, _ = load_model(tmp_path, precision="bfloat16")
    assert ours.tok_embeddings.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["llama", "qwen2", "mistral", "mixtral", "gpt2"])
def test_save_pretrained_loads_in_transformers(name, tmp_path):
    hf = random_hf_model(name)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf_model(tmp_path / "hf")
    save_pretrained(ours, None, tmp_path / "ours")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert type(back).__name__ == type(hf).__name__
    again, _ = load_model(tmp_path / "ours")
    tokens = torch.randint(0, 120, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(back(tokens).logits, ours(tokens), atol=1e-5, rtol=0)
        torch.testing.assert_close(again(tokens), ours(tokens), atol=0, rtol=0)


def test_lmforge_trained_model_round_trips_through_transformers(tmp_path):
    # a model built here (GPT-2 init, GQA, untied head), as the training room would save it
    model = Transformer(
        ModelConfig.preset("llama-tiny", vocab_size=300, n_layers=2, tie_embeddings=False)
    )
    model.eval()
    save_pretrained(model, None, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llama" and config["lmforge"]["n_kv_heads"] == 2
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokens = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens).logits, model(tokens), atol=1e-5, rtol=0)


def test_moe_model_saves_as_mixtral(tmp_path):
    model = Transformer(
        ModelConfig.preset("llama-tiny", vocab_size=300, n_layers=2, n_experts=4, dropout=0.1)
    )
    model.eval()
    save_pretrained(model, None, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mixtral"
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokens = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens).logits, model(tokens), atol=1e-5, rtol=0)


def test_model_without_hf_architecture_round_trips_natively(tmp_path):
    # GPT-2 style (LayerNorm, GELU) with RoPE and MoE: no HF class expresses it
    model = Transformer(
        ModelConfig.preset(
            "gpt2-124m",
            vocab_size=300,
            n_layers=2,
            dim=64,
            n_heads=4,
            hidden_dim=128,
            pos="rope",
            n_experts=3,
            dropout=0.1,
        )
    )
    model.eval()
    save_pretrained(model, None, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "lmforge"
    back, _ = load_model(tmp_path)
    assert back.config == model.config
    tokens = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(back(tokens), model(tokens), atol=0, rtol=0)


def test_save_pretrained_with_tokenizer(tmp_path):
    from lmforge.tokenizer import train_bpe

    tok = train_bpe(
        texts=["hello world, hello there"] * 20, vocab_size=270, special_tokens=["<|eos|>"]
    )
    model = Transformer(ModelConfig.preset("shakespeare-char", vocab_size=tok.vocab_size)).eval()
    save_pretrained(model, tok, tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    _, back_tok = load_model(tmp_path)
    assert back_tok.encode("hello world") == tok.encode("hello world")


# -- bad input ----------------------------------------------------------------------------------


def test_directory_without_config(tmp_path):
    with pytest.raises(LmforgeError, match=r"config\.json"):
        load_model(tmp_path)


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(LmforgeError, match="unsupported model architecture 'bert'"):
        load_model(tmp_path)


def test_missing_and_corrupt_weights(tmp_path):
    hf = random_hf_model("gpt2")
    hf.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(LmforgeError, match=r"model\.safetensors"):
        load_model(tmp_path)
    weights.unlink()
    with pytest.raises(LmforgeError, match=r"no \*\.safetensors"):
        load_model(tmp_path)


def test_invalid_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LmforgeError, match=r"config\.json"):
        load_model(tmp_path)


def test_weights_that_do_not_match_config(tmp_path):
    hf = random_hf_model("llama")
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LmforgeError, match="do not match"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "change", [{"num_key_value_heads": 3}, {"hidden_size": None}], ids=["invalid", "missing"]
)
def test_bad_hyper_parameters_name_the_config_file(tmp_path, change):
    random_hf_model("llama").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LmforgeError, match=r"config\.json: invalid model config"):
        load_model(tmp_path)
