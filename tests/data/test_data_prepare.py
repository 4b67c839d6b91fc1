"""The prepare pipeline: readers, bad inputs, counts, shards, char mode, parallel determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmforge.data import (
    CharTokenizer,
    PrepareConfig,
    TokenStream,
    iter_documents,
    prepare,
    read_meta,
)
from lmforge.data.filters import FilterConfig, QualityFilter, normalize_text
from lmforge.data.readers import ReadReport
from lmforge.data.shards import token_dtype
from lmforge.errors import LmforgeError


@pytest.fixture(scope="module")
def paragraphs(shared_data) -> list[str]:
    d = json.loads((shared_data / "xquad-en" / "xquad.en.json").read_text())
    return [p["context"] for a in d["data"] for p in a["paragraphs"]]


def write_jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts), encoding="utf-8")
    return path


def cfg(**kw) -> PrepareConfig:
    base = dict(tokenizer="char", workers=1, progress=False, val_fraction=0.1)
    base.update(kw)
    return PrepareConfig(**base)


def test_char_mode_matches_nanogpt_split(shared_data, tmp_path):
    src = shared_data / "tinyshakespeare" / "input.txt"
    meta = prepare([src], tmp_path, cfg(filters=None, near_dedup=False))
    text = src.read_text(encoding="utf-8")
    n = len(text)
    assert meta["vocab_size"] == 65 and meta["dtype"] == "uint16" and meta["eos_id"] is None
    # nanoGPT's prepare.py: train = data[: int(n * 0.9)], val = the rest
    assert meta["splits"]["train"]["tokens"] == int(n * 0.9)
    assert meta["splits"]["val"]["tokens"] == n - int(n * 0.9)
    tok = CharTokenizer.load(tmp_path / "tokenizer")
    train = TokenStream(tmp_path, "train").read(0, 1000)
    assert tok.decode(train.tolist()) == text[:1000]
    val = TokenStream(tmp_path, "val")
    assert tok.decode(val.read(0, val.total).tolist()) == text[int(n * 0.9) :]


def test_counts_for_duplicates_filters_and_bad_records(paragraphs, tmp_path):
    docs = paragraphs[:50]
    near = docs[3].replace(" the ", " a ", 2)
    hashtags = " ".join(w + "#" for w in paragraphs[60].split())
    texts = [*docs, docs[0], docs[1], near, "", "short text", hashtags]
    f = write_jsonl(tmp_path / "c.jsonl", texts)
    with f.open("a") as fh:
        fh.write("{not json}\n")
        fh.write(json.dumps({"body": "no text field"}) + "\n")
    fc = FilterConfig(min_words=20)
    meta = prepare([f], tmp_path / "out", cfg(filters=fc))
    s = meta["summary"]
    # real paragraphs the Gopher rules reject on their own (e.g. a repeated 4-gram)
    real_rejects = Counter(r for r in map(QualityFilter(fc).check, docs) if r)
    kept_docs = 50 - sum(real_rejects.values())
    assert s["documents_in"] == len(texts)
    assert s["exact_duplicates"] == 2
    assert s["near_duplicates"] == 1
    assert s["filtered"]["empty"] == 1
    expected = Counter({"empty": 1, "too_few_words": 1, "symbol_ratio": 1}) + real_rejects
    assert s["filtered"] == dict(expected)
    assert s["records_skipped"] == 2
    assert s["documents_kept"] == kept_docs
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == kept_docs
    assert meta["eos_id"] is not None  # several documents: an EOS separates them


def test_bad_files_skipped_and_reported(paragraphs, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", paragraphs[:20])
    bad_utf8 = tmp_path / "latin1.txt"
    bad_utf8.write_bytes("café crème".encode("latin-1") * 50)
    bad_parquet = tmp_path / "broken.parquet"
    bad_parquet.write_bytes(b"PAR1 this is not parquet")
    missing = tmp_path / "missing.jsonl"
    meta = prepare([good, bad_utf8, bad_parquet, missing], tmp_path / "out", cfg(filters=None))
    skipped = {item["path"]: item["reason"] for item in meta["summary"]["files_skipped"]}
    assert set(skipped) == {str(bad_utf8), str(bad_parquet), str(missing)}
    assert "UTF-8" in skipped[str(bad_utf8)]
    assert "Parquet" in skipped[str(bad_parquet)]
    assert "not found" in skipped[str(missing)]
    assert meta["summary"]["documents_kept"] == 20  # the good file is all there


def test_no_readable_input_is_a_clear_error(tmp_path):
    with pytest.raises(LmforgeError, match=r"no readable input.*missing\.txt"):
        prepare([tmp_path / "missing.txt"], tmp_path / "out", cfg())


def test_cli_reports_error_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", "from lmforge.cli import main; raise SystemExit(main())",
         "data", "prepare", "--tokenizer", "char", "--input", str(tmp_path / "nope.txt"),
         "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "nope.txt" in r.stderr


def test_readers_txt_jsonl_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("para one\nline two\n\npara two\n", encoding="utf-8")
    write_jsonl(tmp_path / "b.jsonl", ["json doc"], field="content")
    pq.write_table(pa.table({"content": ["pq doc 1", None, "pq doc 2"]}), tmp_path / "c.parquet")
    report = ReadReport()
    paths = [tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.parquet"]
    docs = list(iter_documents(paths, text_field="content", txt_mode="paragraph", report=report))
    assert [d.text for d in docs] == [
        "para one\nline two",
        "para two",
        "json doc",
        "pq doc 1",
        "pq doc 2",
    ]
    assert report.files_read == 3 and report.skipped_records == 1  # the null row
    lines = list(iter_documents([tmp_path / "a.txt"], txt_mode="line"))
    assert [d.text for d in lines] == ["para one", "line two", "para two"]


def test_unicode_normalisation(tmp_path):
    decomposed = "Cafe\u0301 na\u0131\u0308ve\r\nline"  # e + combining acute, CRLF
    f = write_jsonl(tmp_path / "u.jsonl", [decomposed, "another document here"])
    prepare([f], tmp_path / "o", cfg(filters=None, val_fraction=0.0))
    tok = CharTokenizer.load(tmp_path / "o" / "tokenizer")
    assert "\u00e9" in tok.chars and "\u0301" not in tok.chars and "\r" not in tok.chars


def test_parallel_output_equals_serial_and_shards_stream(paragraphs, tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", paragraphs[:120])
    a = prepare([f], tmp_path / "a", cfg(filters=None, workers=1, shard_tokens=5000))
    b = prepare([f], tmp_path / "b", cfg(filters=None, workers=2, batch_docs=7, shard_tokens=5000))
    assert a["splits"] == b["splits"]
    assert len(a["splits"]["train"]["shards"]) > 3  # several shards...
    for split in ("train", "val"):
        sa, sb = TokenStream(tmp_path / "a", split), TokenStream(tmp_path / "b", split)
        assert np.array_equal(sa.read(0, sa.total), sb.read(0, sb.total))
    # ...read back as one stream: documents are whole and each ends with EOS
    s = TokenStream(tmp_path / "a", "train")
    eos = read_meta(tmp_path / "a")["eos_id"]
    ends = s.doc_starts[1:] - 1
    assert all(int(s.read(int(e), 1)[0]) == eos for e in ends)
    assert s.doc_lengths.sum() == s.total


def test_token_dtype():
    assert token_dtype(65) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32
    assert token_dtype(100_277) == np.uint32


def test_large_vocabulary_uses_uint32(paragraphs, tmp_path, shared_data):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from lmforge.tokenizer.patterns import PATTERNS

    f = write_jsonl(tmp_path / "c.jsonl", paragraphs[:30])
    tok_path = shared_data / "tiktoken" / "cl100k_base.tiktoken"
    meta = prepare(
        [f], tmp_path / "out", cfg(tokenizer=str(tok_path), filters=None, val_fraction=0.0)
    )
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 100_277
    # the shards hold exactly tiktoken's ids, one EOS after each document
    ref = tiktoken.Encoding(
        "cl100k",
        pat_str=PATTERNS["cl100k"],
        mergeable_ranks=load_tiktoken_bpe(str(tok_path)),
        special_tokens={"<|endoftext|>": 100257},
    )
    expected = [
        i for t in paragraphs[:30] for i in [*ref.encode_ordinary(normalize_text(t)), 100257]
    ]
    s = TokenStream(tmp_path / "out", "train")
    assert s.read(0, s.total).tolist() == expected
