"""The Transformer on its own: KV cache, padding, masks, sliding window, MoE, presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.errors import LmforgeError
from lmforge.model import ModelConfig, Transformer
from model_helpers import FAMILIES, tiny

torch.manual_seed(0)


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_prefill_then_decode_equals_full_forward(family):
    model = tiny(**FAMILIES[family])
    tokens = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full = model(tokens)  # [2, 20, V] without a cache
        model.setup_cache(batch_size=2, max_seq_len=32)
        steps = [model(tokens[:, :8], input_pos=torch.arange(8))]
        steps += [model(tokens[:, t : t + 1], input_pos=torch.tensor([t])) for t in range(8, 20)]
        model.reset_cache()
    cached = torch.cat(steps, dim=1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_cache_rollback_overwrites_stale_slots():
    # speculative decoding rolls back by writing at earlier slots; stale later slots must not leak
    model = tiny()
    a = torch.randint(0, 97, (1, 12))
    b = a.clone()
    b[0, 8:] = (a[0, 8:] + 1) % 97
    with torch.no_grad():
        model.setup_cache(1, 32)
        model(a, input_pos=torch.arange(12))  # fills slots 0..11 with a
        out = model(b[:, 8:10], input_pos=torch.tensor([8, 9]))  # rewrite 8, 9; 10, 11 are stale
        model.reset_cache()
        expected = model(b[:, :10])[:, 8:10]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "window"])
def test_left_padded_batch_equals_unpadded(family):
    model = tiny(**FAMILIES[family])
    lengths = [11, 6, 9]
    seqs = [torch.randint(1, 97, (n,)) for n in lengths]
    T = max(lengths)
    tokens = torch.zeros(len(seqs), T, dtype=torch.long)
    positions = torch.zeros(len(seqs), T, dtype=torch.long)
    valid = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        tokens[i, T - len(s) :] = s
        positions[i, T - len(s) :] = torch.arange(len(s))
        valid[i, T - len(s) :] = True
    mask = valid[:, None, None, :]  # [B, 1, 1, S]: never attend to padding
    with torch.no_grad():
        padded = model(tokens, positions=positions, mask=mask.expand(-1, 1, T, T))
        # and with the cache: prefill, then 3 decode steps
        model.setup_cache(len(seqs), 32)
        cache_mask = torch.cat([valid, torch.ones(len(seqs), 32 - T, dtype=torch.bool)], dim=1)
        model(
            tokens, input_pos=torch.arange(T), positions=positions, mask=cache_mask[:, None, None]
        )
        nxt = torch.randint(1, 97, (len(seqs), 3))
        decoded = [
            model(nxt[:, j : j + 1], input_pos=torch.tensor([T + j]),
                  positions=positions[:, -1:] + 1 + j, mask=cache_mask[:, None, None, :])
            for j in range(3)
        ]  # fmt: skip
        model.reset_cache()
        for i, s in enumerate(seqs):
            alone = model(torch.cat([s, nxt[i]])[None])[0]  # [n+3, V]
            torch.testing.assert_close(
                padded[i, T - len(s) :], alone[: len(s)], atol=1e-5, rtol=1e-5
            )
            steps = torch.cat([d[i] for d in decoded])
            torch.testing.assert_close(steps, alone[len(s) :], atol=1e-5, rtol=1e-5)


def test_packed_documents_with_block_mask_equal_separate_documents():
    # the training helper packs documents into one row; positions restart and a block mask separates
    model = tiny()
    docs = [torch.randint(0, 97, (n,)) for n in (7, 5, 8)]
    tokens = torch.cat(docs)[None]
    doc_id = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)])
    positions = torch.cat([torch.arange(len(d)) for d in docs])[None]
    mask = (doc_id[:, None] == doc_id[None, :])[None, None]  # causality is added by the model
    with torch.no_grad():
        packed = model(tokens, positions=positions, mask=mask)[0]
        separate = torch.cat([model(d[None])[0] for d in docs])
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=1e-5)


def test_sliding_window_equals_explicit_band_mask():
    window = 4
    model = tiny(sliding_window=window)
    dense = tiny()  # same seed, same weights, no window
    dense.load_state_dict(model.state_dict())
    tokens = torch.randint(0, 97, (2, 16))
    i = torch.arange(16)
    band = (i[:, None] - i[None, :] < window) & (i[:, None] >= i[None, :])  # [T, S]
    with torch.no_grad():
        windowed = model(tokens)
        explicit = dense(tokens, mask=band[None, None])
        unwindowed = dense(tokens)
    torch.testing.assert_close(windowed, explicit, atol=1e-6, rtol=1e-6)
    # the first `window` positions see their whole past either way; later ones must differ
    torch.testing.assert_close(windowed[:, :window], unwindowed[:, :window], atol=1e-6, rtol=1e-6)
    assert (windowed[:, window:] - unwindowed[:, window:]).abs().amax() > 1e-3


def test_moe_backward_reaches_every_expert_and_router():
    model = tiny(n_experts=4, n_experts_per_token=2).train()
    tokens = torch.randint(0, 97, (4, 32))
    out = model(tokens, full_output=True)
    loss = F.cross_entropy(out.logits.flatten(0, 1), tokens.flatten()) + out.aux_loss
    loss.backward()
    assert out.aux_loss.item() > 0
    for layer in model.layers:
        assert layer.feed_forward.router.weight.grad.abs().sum() > 0
        for expert in layer.feed_forward.experts:
            for p in expert.parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["llama", "moe"])
def test_full_output_gives_hidden_states_logits_and_aux_loss(family):
    model = tiny(**FAMILIES[family])
    tokens = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        out = model(tokens, full_output=True)
        hidden = model(tokens, full_output=True, head=False)
        logits = model(tokens)
    assert out.hidden.shape == (2, 9, 64) and hidden.logits is None
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(hidden.hidden, out.hidden)
    torch.testing.assert_close(model.output(out.hidden), logits)  # the head's input
    assert (out.aux_loss > 0) == (family == "moe") and out.aux_loss.shape == ()


def test_moe_equals_manual_top_k_mixture():
    model = tiny(n_experts=3, n_experts_per_token=2)
    moe = model.layers[0].feed_forward
    x = torch.randn(5, 64)
    with torch.no_grad():
        out, _ = moe(x[None])
        probs = torch.softmax(moe.router(x), -1)
        expected = torch.zeros_like(x)
        for n in range(5):
            w, idx = probs[n].topk(2)
            w = w / w.sum()
            for weight, e in zip(w, idx, strict=True):
                expected[n] += weight * moe.experts[int(e)](x[n])
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_same_gradients():
    tokens = torch.randint(0, 97, (2, 16))
    grads = []
    for flag in (False, True):
        model = tiny(gradient_checkpointing=flag, n_experts=2, n_experts_per_token=1).train()
        out = model(tokens, full_output=True)
        loss = F.cross_entropy(out.logits.flatten(0, 1), tokens.flatten()) + out.aux_loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_dropout_active_only_in_training():
    model = tiny(dropout=0.5)
    tokens = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), model(tokens))
        model.train()
        assert not torch.allclose(model(tokens), model(tokens))


def test_init_weights_scales_residual_projections():
    model = Transformer(ModelConfig.preset("gpt2-124m", n_layers=4, vocab_size=1000))
    assert model.output.weight is model.tok_embeddings.weight
    std = model.layers[0].attention.wqkv.weight.std().item()
    resid = model.layers[0].attention.wo.weight.std().item()
    assert abs(std - 0.02) < 0.002
    assert abs(resid - 0.02 / (2 * 4) ** 0.5) < 0.001
    assert model.layers[0].attention.wqkv.bias.abs().sum() == 0


def test_presets_and_overrides():
    c = ModelConfig.preset("shakespeare-char")
    assert (c.n_layers, c.n_heads, c.dim, c.max_seq_len, c.vocab_size) == (4, 4, 128, 64, 65)
    assert ModelConfig.preset("gpt2-124m").architecture == "gpt2"
    assert ModelConfig.preset("llama-tiny", dropout=0.1).dropout == 0.1
    with torch.device("meta"):  # count without allocating
        gpt2 = Transformer(ModelConfig.preset("gpt2-124m"))
    assert gpt2.num_params() == 124_439_808  # GPT-2 small, as HF counts it
    assert gpt2.num_params(non_embedding=True) == 123_653_376  # nanoGPT's "123.65M"
    with pytest.raises(LmforgeError, match="nope"):
        ModelConfig.preset("nope")
    with pytest.raises(LmforgeError, match="n_kv_heads"):
        ModelConfig(n_heads=6, n_kv_heads=4)
    with pytest.raises(LmforgeError, match="bogus"):
        ModelConfig.from_dict({"bogus": 1})


def test_bf16_forward_close_to_fp32():
    model = tiny()
    tokens = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        ref = model(tokens)
        half = model.to(torch.bfloat16)(tokens)
    assert half.dtype == torch.bfloat16
    assert (half.float() - ref).abs().amax() < 0.05 * ref.abs().amax()


def test_last_only_returns_final_position():
    model = tiny()
    tokens = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, last_only=True), model(tokens)[:, -1:])


def test_fused_decode_kernels_match_the_eager_path(monkeypatch) -> None:
    """Batched, left-padded decoding through lmforge's fused kernels (RMSNorm, attention) gives
    the eager PyTorch path's logits."""
    from lmforge import kernels

    if not kernels.available():
        pytest.skip("lmforge's kernels do not build here")
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)
    model = Transformer(config).eval()
    tokens = torch.randint(0, 64, (2, 6))
    key_ok = torch.ones(2, 32, dtype=torch.bool)
    key_ok[1, :2] = False  # row 1 is left-padded by two slots

    def decode() -> torch.Tensor:
        model.setup_cache(3, 16)
        with torch.inference_mode():
            mask = key_ok[:, None, None, :5]
            model(tokens[:, :5], torch.arange(5), None, mask)
            positions = torch.tensor([[5], [3]])
            return model(tokens[:, 5:], torch.tensor([5]), positions, key_ok[:, None, None, :6])

    fused = decode()
    monkeypatch.setattr(kernels, "available", lambda: False)
    torch.testing.assert_close(fused, decode(), rtol=1e-4, atol=1e-5)
