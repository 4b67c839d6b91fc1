"""The bundled SmolLM2-135M-Instruct (Q4_1 GGUF): lmforge against transformers on the same file."""

from __future__ import annotations

import pytest
import torch
import transformers

from lmforge.assets import DEFAULT_MODEL
from lmforge.checkpoint import load_model, resolve_model_path
from lmforge.model import ModelConfig

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
]
CHAT = [{"role": "user", "content": "Name three primary colours."}]


@pytest.fixture(scope="module")
def smollm2():
    model, tok = load_model(DEFAULT_MODEL)
    return model, tok


@pytest.fixture(scope="module")
def hf_smollm2():
    path = resolve_model_path(DEFAULT_MODEL)
    return transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()


def prompt_ids(tok) -> list[list[int]]:
    chat = tok.apply_chat_template(CHAT, add_generation_prompt=True)
    return [tok.encode(p) for p in PROMPTS] + [tok.encode(chat, allowed_special="all")]


def test_config_from_gguf_metadata(smollm2):
    model, tok = smollm2
    expected = ModelConfig.preset("smollm2-135m")
    c = model.config
    for key in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "head_dim",
                "max_seq_len", "rope_theta", "tie_embeddings", "norm", "mlp", "pos"):  # fmt: skip
        assert getattr(c, key) == getattr(expected, key), key
    assert c.norm_eps == pytest.approx(1e-5)
    assert model.output.weight is model.tok_embeddings.weight
    assert tok.vocab_size == 49152 and tok.eos_id == 2
    assert "<|im_start|>" in tok.special_tokens


def test_kv_cache_decode_equals_recomputation_on_smollm2(smollm2):
    model, tok = smollm2
    ids = torch.tensor([tok.encode(PROMPTS[0])])
    n = ids.shape[1]
    with torch.no_grad():
        model.setup_cache(1, 64)
        logits = model(ids, input_pos=torch.arange(n))
        out = ids[0].tolist()
        for step in range(8):
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            logits = model(torch.tensor([[nxt]]), input_pos=torch.tensor([n + step]))
        model.reset_cache()
        full = model(torch.tensor([out]))
    torch.testing.assert_close(logits[0, -1], full[0, -1], atol=1e-4, rtol=0)
    assert tok.decode(out[n:]).strip().startswith("Paris")


@pytest.mark.slow
def test_logits_match_transformers(smollm2, hf_smollm2):
    model, tok = smollm2
    for ids in prompt_ids(tok):
        x = torch.tensor([ids])
        with torch.no_grad():
            diff = (model(x) - hf_smollm2(x).logits).abs().amax().item()
        assert diff < 1e-3, (ids[:8], diff)


def greedy_lmforge(model, ids: list[int], n_new: int) -> list[int]:
    with torch.no_grad():
        model.setup_cache(1, len(ids) + n_new)
        logits = model(torch.tensor([ids]), input_pos=torch.arange(len(ids)), last_only=True)
        out = []
        for i in range(n_new):
            out.append(int(logits[0, -1].argmax()))
            logits = model(torch.tensor([[out[-1]]]), input_pos=torch.tensor([len(ids) + i]))
        model.reset_cache()
    return out


def greedy_hf(hf, ids: list[int], n_new: int) -> list[int]:
    with torch.no_grad():
        res = hf(torch.tensor([ids]), use_cache=True)
        out = []
        for _ in range(n_new):
            out.append(int(res.logits[0, -1].argmax()))
            res = hf(torch.tensor([[out[-1]]]), cache=res.cache, use_cache=True)
    return out


@pytest.mark.slow
def test_greedy_continuations_match_transformers(smollm2, hf_smollm2):
    model, tok = smollm2
    for ids in prompt_ids(tok)[-2:]:  # a plain prompt and a chat prompt, 64 tokens each
        assert greedy_lmforge(model, ids, 64) == greedy_hf(hf_smollm2, ids, 64)


def test_quantized_load_parses_the_file_once(monkeypatch) -> None:
    from lmforge.checkpoint import load as load_module
    from lmforge.model.quantize import HybridLinear, Int4Linear

    calls = []
    real = load_module.read_gguf
    monkeypatch.setattr(load_module, "read_gguf", lambda p: calls.append(p) or real(p))
    handle = load_model(DEFAULT_MODEL, precision="fp32", quantize="auto")
    assert len(calls) == 1
    assert handle.name == DEFAULT_MODEL and handle.path == resolve_model_path(DEFAULT_MODEL)
    assert handle.quantization == "int4" and handle.precision == torch.float32
    assert handle.config is handle.model.config and "im_start" in handle.chat_template
    wqkv = handle.model.layers[0].attention.wqkv
    assert isinstance(wqkv, HybridLinear) and isinstance(wqkv.quantized, Int4Linear)
    # the file's Q4_1 blocks, as they are: the same weights as the float copy for prefill
    torch.testing.assert_close(wqkv.dequantize(), wqkv.full.weight, rtol=0, atol=1e-6)
