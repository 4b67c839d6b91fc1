"""GGUF: our reader against the gguf package, write -> read round trips, K-quants, bad files."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
import transformers
from gguf import GGMLQuantizationType as Q

from lmforge.checkpoint import load_model, read_gguf, write_gguf
from lmforge.checkpoint.gguf import dequantize
from lmforge.errors import LmforgeError
from lmforge.model import Transformer
from model_helpers import FAMILIES as MODEL_FAMILIES
from model_helpers import tiny as shared_tiny

GGUF_TINY = dict(vocab_size=300, hidden_dim=96)


def tiny(**overrides) -> Transformer:
    # non-trivial norms and biases, so that a mix-up shows
    return shared_tiny(perturb=True, **{**GGUF_TINY, **overrides})


# every family GGUF files hold (llama.cpp has no sliding-window llama), and two RoPE scalings
FAMILIES = {k: v for k, v in MODEL_FAMILIES.items() if k != "window"} | {
    "llama-untied-linear-rope": dict(
        tie_embeddings=False, rope_scaling={"rope_type": "linear", "factor": 2.0}
    ),
    "llama3-rope": dict(
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        }
    ),
}


@pytest.fixture(scope="module")
def tokenizer():
    from lmforge.tokenizer import train_bpe

    text = ["The quick brown fox jumps over the lazy dog. Pack my box with five dozen jugs."] * 20
    return train_bpe(texts=text, vocab_size=298, special_tokens=["<|bos|>", "<|eos|>"])


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_round_trip_is_exact(family, tmp_path):
    model = tiny(**FAMILIES[family])
    path = write_gguf(model, None, tmp_path / "m.gguf", qtype="F32")
    back, tok = load_model(path)
    assert tok is None
    tokens = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(back(tokens), model(tokens), atol=1e-6, rtol=0)


@pytest.mark.parametrize("qtype,tol", [("F16", 2e-3), ("Q8_0", 2e-2)])
def test_quantized_round_trip_within_quantization_error(qtype, tol, tmp_path):
    model = tiny(dim=64, hidden_dim=128)
    path = write_gguf(model, None, tmp_path / "m.gguf", qtype=qtype)
    g = read_gguf(path)
    assert g.tensors["blk.0.attn_q.weight"].qtype == Q[qtype]
    assert g.tensors["blk.0.attn_norm.weight"].qtype == Q.F32  # norms stay exact
    back, _ = load_model(path)
    tokens = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        ref, got = model(tokens), back(tokens)
    err = (got - ref).abs().amax().item()
    assert 0 < err < tol * ref.abs().amax().item()
    # and the weights themselves are within one quantization step of the originals
    w = model.layers[0].feed_forward.w2.weight
    step = w.abs().amax() / (127 if qtype == "Q8_0" else 1000)
    assert (back.layers[0].feed_forward.w2.weight - w).abs().amax() <= step


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_written_gguf_loads_in_transformers(family, tokenizer, tmp_path):
    # transformers' GGUF loader follows llama.cpp's conventions (q/k permutation, names, keys):
    # equal logits there mean llama.cpp reads our files the same way
    overrides = dict(FAMILIES[family])
    if family == "gpt2":  # transformers reads neither n_positions nor n_inner from GGUF
        overrides.update(max_seq_len=1024, hidden_dim=256)
    model = tiny(vocab_size=tokenizer.vocab_size, **overrides)
    write_gguf(model, tokenizer, tmp_path / "m.gguf", qtype="F32")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="m.gguf", dtype=torch.float32
    ).eval()
    tokens = torch.randint(0, tokenizer.vocab_size, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens).logits, model(tokens), atol=1e-4, rtol=0)


def test_tokenizer_round_trips_through_gguf(tokenizer, tmp_path):
    model = tiny(vocab_size=tokenizer.vocab_size)
    path = write_gguf(model, tokenizer, tmp_path / "m.gguf", qtype="Q8_0")
    _, back_tok = load_model(path)
    text = "The lazy fox packs five boxes."
    assert back_tok.encode(text) == tokenizer.encode(text)
    assert back_tok.special_tokens == tokenizer.special_tokens
    meta = read_gguf(path).metadata
    assert meta["general.architecture"] == "llama"
    assert meta["tokenizer.ggml.model"] == "gpt2"


def test_reader_agrees_with_gguf_reader(tokenizer, tmp_path):
    model = tiny(vocab_size=tokenizer.vocab_size, qkv_bias=True)
    path = write_gguf(model, tokenizer, tmp_path / "m.gguf", qtype="Q8_0")
    ours = read_gguf(path)
    ref = gguf.GGUFReader(path)
    ref_meta = {k: f.contents() for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert ours.metadata.keys() == ref_meta.keys()
    for key, value in ref_meta.items():
        if isinstance(value, float):
            assert ours.metadata[key] == pytest.approx(value)
        else:
            assert ours.metadata[key] == value, key
    assert list(ours.tensors) == [t.name for t in ref.tensors]
    for t in ref.tensors:
        mine = ours.tensors[t.name]
        assert mine.qtype == t.tensor_type
        assert mine.shape == tuple(int(d) for d in reversed(t.shape))
        assert np.array_equal(
            mine.data.reshape(-1).view(np.uint8), t.data.reshape(-1).view(np.uint8)
        )


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
def test_torch_dequantize_equals_gguf_package(qtype):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((8, 128)).astype(np.float32)
    raw = gguf.quants.quantize(weights, Q[qtype])  # uint8 [8, bytes_per_row]
    ours = dequantize(raw, Q[qtype]).numpy()
    ref = gguf.quants.dequantize(raw, Q[qtype])
    np.testing.assert_array_equal(ours, ref)
    step = np.abs(weights).max() / (127 if qtype == "Q8_0" else 7)  # one quantization step
    assert np.abs(ours - weights).max() < step  # and it is a quantization of the weights


def test_bf16_and_f16_tensors_read_exactly(tmp_path):
    w = torch.randn(8, 64)
    writer = gguf.GGUFWriter(str(tmp_path / "h.gguf"), "llama")
    writer.add_tensor("bf16", w.bfloat16().view(torch.int16).numpy(), raw_dtype=Q.BF16)
    writer.add_tensor("f16", w.half().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    g = read_gguf(tmp_path / "h.gguf")
    assert g.tensors["bf16"].qtype == Q.BF16 and g.tensors["bf16"].shape == (8, 64)
    torch.testing.assert_close(g.tensors["bf16"].dequantize(), w.bfloat16().float(), atol=0, rtol=0)
    torch.testing.assert_close(g.tensors["f16"].dequantize(), w.half().float(), atol=0, rtol=0)


def random_k_blocks(qtype: Q, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """Random but well-formed K-quant blocks: random nibbles/scales, small finite fp16 d/dmin."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    d = np.full((n_blocks, 1), 0.002, np.float16).view(np.uint8)
    dmin = np.full((n_blocks, 1), 0.001, np.float16).view(np.uint8)
    if qtype == Q.Q6_K:  # ql, qh, scales (int8), then d at the end
        blocks[:, -2:] = d
    else:  # d, dmin, scales, ...
        blocks[:, 0:2], blocks[:, 2:4] = d, dmin
    return blocks


@pytest.mark.parametrize("qtype", ["Q4_K", "Q5_K", "Q6_K"])
def test_k_quant_model_matches_transformers(qtype, tmp_path):
    # a llama GGUF whose matrices are K-quant blocks (rows of 256): our loader vs transformers'
    rng = np.random.default_rng(0)
    dim, hidden, vocab = 256, 512, 64
    writer = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
    for key, value in (("block_count", 1), ("context_length", 64), ("embedding_length", dim),
                       ("feed_forward_length", hidden), ("head_count", 4), ("head_count_kv", 2)):  # fmt: skip
        getattr(writer, f"add_{key}")(value)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(vocab)
    shapes = {"token_embd.weight": (vocab, dim), "output.weight": (vocab, dim),
              "blk.0.attn_q.weight": (dim, dim), "blk.0.attn_k.weight": (dim // 2, dim),
              "blk.0.attn_v.weight": (dim // 2, dim), "blk.0.attn_output.weight": (dim, dim),
              "blk.0.ffn_gate.weight": (hidden, dim), "blk.0.ffn_up.weight": (hidden, dim),
              "blk.0.ffn_down.weight": (dim, hidden)}  # fmt: skip
    for name, (rows, cols) in shapes.items():
        blocks = random_k_blocks(Q[qtype], rows * cols // 256, rng).reshape(rows, -1)
        writer.add_tensor(name, blocks, raw_dtype=Q[qtype])
    for name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"):
        writer.add_tensor(name, (1 + 0.1 * rng.standard_normal(dim)).astype(np.float32))
    _add_minimal_tokenizer(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    ours, _ = load_model(tmp_path / "k.gguf", tokenizer=False)
    assert read_gguf(tmp_path / "k.gguf").tensors["blk.0.attn_q.weight"].qtype == Q[qtype]
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="k.gguf", dtype=torch.float32
    ).eval()
    tokens = torch.randint(0, vocab, (1, 12))
    with torch.no_grad():
        expected = hf(tokens).logits
        torch.testing.assert_close(
            ours(tokens), expected, atol=1e-4 * expected.abs().amax().item(), rtol=0
        )


def _add_minimal_tokenizer(writer, vocab: int) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([chr(0x100 + i) for i in range(vocab)])
    writer.add_token_types([1] * vocab)
    writer.add_token_merges([])


# -- bad input ----------------------------------------------------------------------------------


def _small_gguf(tmp_path):
    return write_gguf(tiny(), None, tmp_path / "ok.gguf", qtype="F32")


def test_missing_file(tmp_path):
    with pytest.raises(LmforgeError, match=r"nope\.gguf"):
        load_model(tmp_path / "nope.gguf")
    with pytest.raises(LmforgeError, match=r"nope\.gguf"):
        read_gguf(tmp_path / "nope.gguf")


def test_unknown_model_name():
    with pytest.raises(LmforgeError, match="no-such-model"):
        load_model("no-such-model")


@pytest.mark.parametrize("keep", [10, 200, 0.5, 0.999])
def test_truncated_file(keep, tmp_path):
    data = _small_gguf(tmp_path).read_bytes()
    n = int(keep * len(data)) if isinstance(keep, float) else keep
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:n])
    with pytest.raises(LmforgeError, match=r"cut\.gguf.*truncated"):
        load_model(bad)


def test_corrupt_file(tmp_path):
    data = bytearray(_small_gguf(tmp_path).read_bytes())
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes([3, 0, 0, 0]) + bytes([0xFF] * 16) + bytes(data[24:]))
    with pytest.raises(LmforgeError, match=r"bad\.gguf"):
        load_model(bad)
    bad.write_bytes(b"NOPE" + bytes(data[4:]))
    with pytest.raises(LmforgeError, match=r"bad\.gguf.*not a model"):
        load_model(bad)
    with pytest.raises(LmforgeError, match=r"bad\.gguf.*bad magic"):
        read_gguf(bad)
    bad.write_bytes(b"")
    with pytest.raises(LmforgeError, match=r"bad\.gguf"):
        load_model(bad)


def test_unsupported_architecture(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "mamba.gguf"), "mamba")
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(LmforgeError, match=r"mamba\.gguf.*unsupported architecture 'mamba'"):
        load_model(tmp_path / "mamba.gguf")


def test_unsupported_quant_type(tmp_path):
    model = tiny(dim=256, n_heads=4, hidden_dim=256, n_layers=1)
    path = write_gguf(model, None, tmp_path / "iq.gguf", qtype="F32")
    g = read_gguf(path)
    # rewrite the file with one matrix tagged as IQ4_NL (same block geometry as Q4_0 per 32)
    writer = gguf.GGUFWriter(str(tmp_path / "iq2.gguf"), "llama")
    for key, value in g.metadata.items():
        if key.startswith("llama.") or key == "general.file_type":
            _copy_kv(writer, key, value)
    for name, t in g.tensors.items():
        if name == "blk.0.ffn_up.weight":
            rows, cols = t.shape
            writer.add_tensor(name, np.zeros((rows, cols // 32 * 18), np.uint8), raw_dtype=Q.IQ4_NL)
        else:
            writer.add_tensor(name, t.dequantize().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(LmforgeError, match=r"iq2\.gguf.*unsupported quant type IQ4_NL"):
        load_model(tmp_path / "iq2.gguf")


def _copy_kv(writer, key: str, value) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    else:
        writer.add_string(key, value)


def test_write_rejects_unknown_qtype(tmp_path):
    with pytest.raises(LmforgeError, match="Q3_K"):
        write_gguf(tiny(), None, tmp_path / "x.gguf", qtype="Q3_K")


@pytest.fixture(scope="module")
def small_gguf_bytes(tmp_path_factory, tokenizer):
    model = tiny(vocab_size=tokenizer.vocab_size, n_layers=1)
    path = write_gguf(model, tokenizer, tmp_path_factory.mktemp("g") / "s.gguf", qtype="Q8_0")
    return path.read_bytes()


def test_damaged_hyper_parameters_name_the_file(small_gguf_bytes, tmp_path):
    # a flipped byte in the KV-head count used to surface as an unlocated "invalid model config"
    data = bytearray(small_gguf_bytes)
    key = data.find(b"attention.head_count_kv")
    data[key + len("attention.head_count_kv") + 4 + 1] = 1  # value (after the u32 type tag) += 256
    bad = tmp_path / "damaged.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(LmforgeError, match=r"damaged\.gguf: invalid model config"):
        load_model(bad)


def test_damaged_files_never_escape_as_other_errors(small_gguf_bytes, tmp_path):
    # flip bytes in the header and directory, and truncate anywhere: either it loads, or it
    # fails with one LmforgeError naming the file, never with an IndexError/struct.error/...
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    header_end = small_gguf_bytes.find(b"blk.0.attn_norm") + 4000  # metadata + tensor directory
    bad = tmp_path / "damaged.gguf"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        flips=st.lists(st.tuples(st.integers(4, header_end), st.integers(0, 255)), max_size=4),
        cut=st.one_of(st.none(), st.integers(0, len(small_gguf_bytes) - 1)),
    )
    def check(flips, cut):
        data = bytearray(small_gguf_bytes)
        for pos, value in flips:
            data[pos] = value
        bad.write_bytes(bytes(data[:cut] if cut is not None else data))
        try:
            load_model(bad)
        except LmforgeError as e:
            assert "damaged.gguf" in str(e) and "\n" not in str(e)

    check()
