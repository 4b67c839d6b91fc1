"""A model trained here exports to HF (transformers loads it with equal logits) and to GGUF."""

from __future__ import annotations

import pytest
import torch
import transformers

from lmforge.checkpoint import load_model, write_gguf
from lmforge.train import train


@pytest.fixture(scope="module")
def trained(char_data, tmp_path_factory):
    from .conftest import tiny_config

    out = tmp_path_factory.mktemp("export")
    result = train(tiny_config(char_data, train={"max_iters": 6}), out)
    return out, result


def test_native_dir_loads_and_matches_checkpoint(trained):
    out, _ = trained
    model, tok = load_model(out)
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=False)["model"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], msg=name)
    text = "ROMEO:\nWhat light"
    assert tok.decode(tok.encode(text)) == text


def test_transformers_loads_with_equal_logits(trained):
    out, _ = trained
    model, tok = load_model(out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "First Citizen:\nBefore we proceed"
    ids = tok.encode(text)
    assert hf_tok(text)["input_ids"] == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = model.eval()(x)
        theirs = hf(x).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_gguf_roundtrip(trained, tmp_path):
    out, _ = trained
    model, tok = load_model(out)
    path = write_gguf(model, tok, tmp_path / "model.gguf", qtype="F32")
    back, back_tok = load_model(path)
    x = torch.tensor([tok.encode("KING HENRY:\nNow")])
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), model.eval()(x), atol=1e-5, rtol=1e-5)
    assert back_tok.encode("KING") == tok.encode("KING")
