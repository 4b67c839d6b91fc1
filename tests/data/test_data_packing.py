"""Packing: document masks (checked through the real model), curriculum order, data-parallel rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmforge.data import Batcher, PrepareConfig, TokenStream, document_mask, prepare
from lmforge.model import ModelConfig, Transformer

EOS = 0


def test_document_mask_shapes_and_positions():
    x = torch.tensor([[5, 6, EOS, 7, 8, 9, EOS, 4]])
    positions, mask = document_mask(x, EOS)
    assert positions.tolist() == [[0, 1, 2, 0, 1, 2, 3, 0]]
    assert mask.shape == (1, 1, 8, 8) and mask.dtype == torch.bool
    m = mask[0, 0]
    assert m[4].tolist() == [False, False, False, True, True, False, False, False]
    assert not m.triu(1).any()  # causal


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_model_never_attends_across_documents(pos):
    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(vocab_size=32, dim=32, n_layers=2, n_heads=4, max_seq_len=16, pos=pos)
    ).eval()
    doc_a = [3, 4, 5, EOS]
    doc_b = [7, 8, 9, 10, 11, EOS]
    x = torch.tensor([doc_a + doc_b])
    x_other = torch.tensor([[12, 13, 14, EOS, *doc_b]])  # different first document
    with torch.no_grad():
        pos_a, mask_a = document_mask(x, EOS)
        logits = model(x, positions=pos_a, mask=mask_a)
        pos_o, mask_o = document_mask(x_other, EOS)
        logits_other = model(x_other, positions=pos_o, mask=mask_o)
        alone = model(torch.tensor([doc_b]))  # doc_b on its own, positions 0..5
        unmasked = model(x)
    # the second document's outputs do not depend on the first document at all...
    torch.testing.assert_close(logits[0, 4:], logits_other[0, 4:])
    # ...and equal the document processed alone (positions restart at its first token)
    torch.testing.assert_close(logits[0, 4:], alone[0], atol=1e-5, rtol=1e-5)
    # without the mask the first document leaks in
    assert not torch.allclose(unmasked[0, 4:], alone[0], atol=1e-3)


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory, shared_data):
    d = json.loads((shared_data / "xquad-en" / "xquad.en.json").read_text())
    texts = [
        p["context"][: 80 + 37 * i % 700]
        for i, p in enumerate(a for x in d["data"] for a in x["paragraphs"])
    ][:60]
    root = tmp_path_factory.mktemp("packing")
    f = root / "docs.jsonl"
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    prepare([f], root / "out", PrepareConfig(tokenizer="char", workers=1, progress=False, filters=None,
                                             near_dedup=False, val_fraction=0.0, shard_tokens=3000))  # fmt: skip
    return root / "out"


def test_sequential_epoch_covers_every_token_once(docs_dir):
    stream = TokenStream(docs_dir, "train")
    T = 32
    b = Batcher(stream, T, 4, mode="sequential", order="corpus")
    n_windows = b.windows_per_epoch
    rows = [b.batch(step).x for step in range(n_windows // 4)]
    got = torch.cat(rows).flatten().numpy()
    assert np.array_equal(got, stream.read(0, got.size))


def test_curriculum_goes_short_to_long(docs_dir):
    stream = TokenStream(docs_dir, "train")
    eos = json.loads((docs_dir / "meta.json").read_text())["eos_id"]
    b = Batcher(stream, 64, 4, mode="sequential", order="length", eos_id=eos)
    lengths = np.sort(stream.doc_lengths)
    first = b.batch(0).x[0].numpy()
    # the first window holds the shortest documents, in length order
    first_docs = np.split(first, np.flatnonzero(first == eos) + 1)
    assert [len(d) for d in first_docs[:-1]] == lengths[: len(first_docs) - 1].tolist()


def test_ranks_split_the_global_batch(docs_dir):
    stream = TokenStream(docs_dir, "train")
    for mode in ("random", "sequential"):
        b = Batcher(stream, 16, 8, mode=mode, seed=3)
        full = b.batch(5)
        parts = [
            b.batch(5, rank=r, world=2, micro=m, n_micro=2).x for m in range(2) for r in range(2)
        ]
        assert torch.equal(torch.cat(parts), full.x)
        assert torch.equal(b.batch(5).x, full.x)  # a pure function of the step


def test_doc_mask_batches(docs_dir):
    stream = TokenStream(docs_dir, "train")
    eos = json.loads((docs_dir / "meta.json").read_text())["eos_id"]
    batch = Batcher(stream, 128, 2, doc_mask=True, eos_id=eos).batch(0)
    assert batch.positions.shape == (2, 128) and batch.mask.shape == (2, 1, 128, 128)
    assert (batch.positions == 0).sum() >= 2
