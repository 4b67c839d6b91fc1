"""Encoding parity with tiktoken (both our backends), specials, decode, id mapping."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from tiktoken.load import load_tiktoken_bpe
from tokenizers import Tokenizer as HFTokenizer

from lmforge.errors import LmforgeError
from lmforge.tokenizer import Tokenizer, load_tokenizer, save_tokenizer, train_bpe
from lmforge.tokenizer.patterns import GPT2, GPT4, O200K

from .helpers import unicode_text

ENCODINGS = ["gpt2", "cl100k_base", "o200k_base"]


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request: pytest.FixtureRequest, shared_data: Path) -> tuple[Tokenizer, tiktoken.Encoding]:
    """(our tokenizer from the .tiktoken file, tiktoken's own Encoding from the same file)."""
    path = shared_data / "tiktoken" / f"{request.param}.tiktoken"
    ours = load_tokenizer(path)
    pat = {"gpt2": GPT2, "cl100k_base": GPT4, "o200k_base": O200K}[request.param]
    theirs = tiktoken.Encoding(
        request.param,
        pat_str=pat,
        mergeable_ranks=load_tiktoken_bpe(str(path)),
        special_tokens=ours.special_tokens,
    )
    return ours, theirs


def test_patterns_are_tiktokens(monkeypatch: pytest.MonkeyPatch) -> None:
    from tiktoken_ext import openai_public

    # The constructors download their ranks; we only want their patterns.
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})
    assert openai_public.r50k_base()["pat_str"] == GPT2
    assert openai_public.cl100k_base()["pat_str"] == GPT4
    assert openai_public.o200k_base()["pat_str"] == O200K


@pytest.mark.parametrize("corpus", ["shakespeare", "python_docs"])
def test_tiktoken_parity_on_corpora(
    pair: tuple[Tokenizer, tiktoken.Encoding], corpus: str, request: pytest.FixtureRequest
) -> None:
    """Acceptance 2 on real text: both backends give tiktoken's ids and decode back."""
    ours, theirs = pair
    text = request.getfixturevalue(corpus)
    expected = theirs.encode_ordinary(text)
    assert ours.encode(text, backend="fast") == expected
    assert ours.encode(text, backend="python") == expected
    assert ours.decode(expected) == text
    lines = text.splitlines(keepends=True)[:500]
    assert ours.encode_batch(lines) == theirs.encode_ordinary_batch(lines)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=unicode_text())
def test_tiktoken_parity_on_generated_unicode(
    pair: tuple[Tokenizer, tiktoken.Encoding], text: str
) -> None:
    ours, theirs = pair
    expected = theirs.encode_ordinary(text)
    assert ours.encode(text, backend="fast") == expected
    assert ours.encode(text, backend="python") == expected
    assert ours.decode(ours.encode(text)) == text


def test_special_token_modes(pair: tuple[Tokenizer, tiktoken.Encoding]) -> None:
    ours, theirs = pair
    text = "hello <|endoftext|> world<|endoftext|>"
    eot = ours.special_tokens["<|endoftext|>"]
    for backend in ("fast", "python"):
        assert ours.encode(text, "all", backend=backend) == theirs.encode(
            text, allowed_special="all"
        )
        assert ours.encode(text, "none", backend=backend) == theirs.encode_ordinary(text)
        assert ours.encode(text, {"<|endoftext|>"}, backend=backend).count(eot) == 2
        with pytest.raises(LmforgeError, match=r"special token '<\|endoftext\|>'"):
            ours.encode(text, backend=backend)
    assert ours.decode(ours.encode(text, "all")) == text


def test_surrogates_replaced_like_tiktoken(pair: tuple[Tokenizer, tiktoken.Encoding]) -> None:
    ours, theirs = pair
    text = "a\ud800b \udcff"
    assert ours.encode(text, backend="python") == theirs.encode_ordinary(text)
    assert ours.encode(text, backend="fast") == theirs.encode_ordinary(text)


def test_decode_invalid_utf8_is_replaced(pair: tuple[Tokenizer, tiktoken.Encoding]) -> None:
    ours, _ = pair
    ids = ours.encode("é")  # two bytes; in gpt2 two tokens, elsewhere one
    first = ours.encode_ordinary("é")[:1] if len(ids) > 1 else [ours.token_to_id(b"\xc3")]
    assert ours.decode(first) == "\ufffd"
    assert ours.decode_bytes(first) == b"\xc3"
    with pytest.raises(LmforgeError, match="not in the vocabulary"):
        ours.decode([10**9])


def test_token_id_lookup(pair: tuple[Tokenizer, tiktoken.Encoding]) -> None:
    ours, theirs = pair
    the = theirs.encode_ordinary(" the")[0]
    assert ours.token_to_id(b" the") == the
    assert ours.token_to_id("Ġthe") == the  # GPT-2 printable form, as HF shows tokens
    assert ours.id_to_token(the) == "Ġthe"
    assert ours.token_to_id("<|endoftext|>") == ours.special_tokens["<|endoftext|>"]
    assert ours.id_to_token(ours.special_tokens["<|endoftext|>"]) == "<|endoftext|>"
    assert ours.token_to_id("\u2603 not a token") is None
    assert ours.vocab_size == theirs.n_vocab


def test_gpt2_files_equal_tiktoken(shared_data: Path, python_docs: str, tmp_path: Path) -> None:
    """GPT-2's encoder.json + vocab.bpe (merge list) == gpt2.tiktoken (rank table)."""
    ref = shared_data / "bpe-reference"
    (tmp_path / "encoder.json").write_bytes((ref / "gpt2_vocab.json").read_bytes())
    (tmp_path / "vocab.bpe").write_bytes((ref / "gpt2_merges.txt").read_bytes())
    merges_tok = load_tokenizer(tmp_path)
    assert merges_tok.merges is not None and merges_tok.special_tokens == {"<|endoftext|>": 50256}
    ranks_tok = load_tokenizer(shared_data / "tiktoken" / "gpt2.tiktoken")
    text = python_docs[:20_000]
    expected = ranks_tok.encode(text)
    assert merges_tok.encode(text, backend="python") == expected
    assert merges_tok.encode(text, backend="fast") == expected


# ---------------------------------------------------------------- merge-list vocabularies


@pytest.fixture(scope="module")
def trained(python_docs: str) -> Tokenizer:
    return train_bpe(
        texts=[python_docs[:100_000]],
        vocab_size=1500,
        special_tokens=["<|endoftext|>"],
        progress=False,
    )


def _hf(tok: Tokenizer, tmp_path: Path) -> HFTokenizer:
    save_tokenizer(tok, tmp_path)
    return HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))


def _with_shuffled_ids(tok: Tokenizer, seed: int, specials: dict[str, int]) -> Tokenizer:
    """The same vocabulary and merges under permuted ids: ids no longer follow merge order."""
    ids = list(tok.vocab)
    perm = ids[:]
    random.Random(seed).shuffle(perm)
    vocab = {new: tok.vocab[old] for old, new in zip(ids, perm, strict=True)}
    return Tokenizer(vocab, merges=tok.merges, special_tokens=specials)


def test_fast_backend_maps_ids_not_in_merge_order(
    trained: Tokenizer, python_docs: str, tmp_path: Path
) -> None:
    """Shuffle the ids: the fast backend needs a rank->id table and must still agree."""
    shuffled = _with_shuffled_ids(trained, seed=0, specials={"<|endoftext|>": 0})
    text = python_docs[100_000:140_000] + "<|endoftext|>x"
    fast = shuffled.encode(text, "all", backend="fast")
    assert shuffled._fast_table is not None
    assert fast == shuffled.encode(text, "all", backend="python")
    assert fast == _hf(shuffled, tmp_path).encode(text).ids
    assert trained._fast_encoding() is not None and trained._fast_table is None  # ids = ranks


def test_ignore_merges_whole_piece_first(tmp_path: Path) -> None:
    """Llama-3 style: a piece that is a token is taken whole even if merges never build it."""
    vocab = {i: bytes([i]) for i in range(256)}
    merges = [(b"h", b"e"), (b"l", b"l"), (b"he", b"ll")]
    for j, (a, b) in enumerate(merges):
        vocab[256 + j] = a + b
    vocab[259] = b"hello"  # unreachable by the merges above
    plain = Tokenizer(vocab, merges=merges)
    llama = Tokenizer(vocab, merges=merges, ignore_merges=True)
    assert plain.encode("hello", backend="python") == [258, ord("o")]
    assert llama.encode("hello", backend="python") == [259]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fast backend cannot express this vocabulary
        assert llama.encode("hello hellos") == llama.encode("hello hellos", backend="python")
    assert plain.encode("hello", backend="fast") == [258, ord("o")]
    for tok in (plain, llama):
        hf = _hf(tok, tmp_path / str(tok.ignore_merges))
        for text in ["hello", "hello hellos", "hhelloo"]:
            assert tok.encode(text, backend="python") == hf.encode(text).ids


def test_missing_byte_tokens_are_dropped_like_hf(trained: Tokenizer, tmp_path: Path) -> None:
    """Some vocabularies (SmolLM2's) lack a few control bytes: HF drops them, and so do we."""
    vocab = {i: t for i, t in trained.vocab.items() if t not in (b"\x04", b"\x06")}
    tok = Tokenizer(vocab, merges=trained.merges, special_tokens=trained.special_tokens)
    hf = _hf(tok, tmp_path)
    for text in ["a\x04b", "x\x04\x06y the\x04re", "plain text"]:
        expected = hf.encode(text).ids
        assert tok.encode(text, backend="python") == expected
        assert tok.encode(text, backend="fast") == expected
        assert tok.encode_batch([text, "ok"]) == [expected, hf.encode("ok").ids]


def test_encode_batch_matches_encode(trained: Tokenizer, python_docs: str) -> None:
    lines = python_docs.splitlines()[:300]
    assert trained.encode_batch(lines) == [trained.encode(x, backend="python") for x in lines]
    assert trained.encode_batch(lines, backend="python") == trained.encode_batch(lines)


def _per_line(tok: Tokenizer, text: str, allowed: str) -> list[list[int]]:
    return [tok.encode(line, allowed, backend="python") for line in text.split("\n")]


def test_encode_lines_is_encode_of_each_line(
    pair: tuple[Tokenizer, tiktoken.Encoding], python_docs: str
) -> None:
    """One call for all lines gives each line's own ids: no piece runs over a line end (on
    this text, ".\n" and " \n" would be single tokens if it did), empty lines stay empty."""
    ours, theirs = pair
    text = "\n" + python_docs[:50_000] + "\n\n  \nend.\n"
    expected = [theirs.encode_ordinary(line) for line in text.split("\n")]
    assert ours.encode_lines(text, "none") == expected
    assert ours.encode_lines(text, "none") == _per_line(ours, text, "none")
    assert ours.encode_lines("", "none") == [[]]


def test_encode_lines_with_specials_and_a_rank_table(trained: Tokenizer, python_docs: str) -> None:
    """Special tokens inside lines, ids that need the rank->id table, the python backend, and
    the error for a forbidden special token."""
    top = max(trained.vocab)
    specials = {"<|endoftext|>": 0, "<|a\nb|>": top + 1}
    shuffled = _with_shuffled_ids(trained, seed=1, specials=specials)
    text = python_docs[:20_000].replace("\n\n", "\n<|endoftext|> x\n") + "<|a\nb|>"
    for tok in (trained, shuffled):
        for allowed in ("all", "none"):
            assert tok.encode_lines(text, allowed) == _per_line(tok, text, allowed)
        assert tok.encode_lines(text, "all") == [tok.encode(x, "all") for x in text.split("\n")]
        with pytest.raises(LmforgeError, match="special token"):
            tok.encode_lines(text)
    assert shuffled._fast_lines is not None and shuffled._fast_lines[1] is not None
    flat = shuffled.encode_lines_flat(text, "all")
    assert flat.count(shuffled.vocab_size) == text.count("\n")
    assert shuffled.vocab_size not in shuffled.encode(text, "all")
    python = Tokenizer(
        trained.vocab,
        merges=trained.merges,
        special_tokens=trained.special_tokens,
        backend="python",
    )
    assert python.encode_lines(text, "all") == _per_line(trained, text, "all")
    assert python._fast_lines is None


def test_unknown_backend_and_allowed_special(trained: Tokenizer) -> None:
    with pytest.raises(LmforgeError, match="allowed_special"):
        trained.encode("x", allowed_special="some")  # type: ignore[arg-type]
    with pytest.raises(LmforgeError, match="backend"):
        Tokenizer(trained.vocab, merges=trained.merges, backend="rust")  # type: ignore[arg-type]


def test_repr_and_len(trained: Tokenizer) -> None:
    assert len(trained) == trained.vocab_size == 1500
    assert "vocab_size=1500" in repr(trained)
    assert json.dumps(trained.special_tokens) == '{"<|endoftext|>": 0}'


@pytest.mark.slow
def test_tiktoken_parity_on_full_corpora(
    pair: tuple[Tokenizer, tiktoken.Encoding], shared_data: Path
) -> None:
    """Acceptance 2 on all of TinyShakespeare and the Python docs corpus (11 MB)."""
    ours, theirs = pair
    texts = [(shared_data / "tinyshakespeare" / "input.txt").read_text("utf-8")]
    texts += [
        p.read_text("utf-8")
        for p in sorted((shared_data / "python-docs" / "rst_sources").rglob("*.txt"))
    ]
    expected = theirs.encode_ordinary_batch(texts)
    assert ours.encode_batch(texts) == expected
    assert [ours.encode(t, "none", backend="python") for t in texts] == expected
    assert [ours.decode(ids) for ids in expected] == texts


def test_token_made_by_two_merges(tmp_path: Path) -> None:
    """b"abc" is built by (ab, c) and by (a, bc): tiktoken ranks cannot say that, so the fast
    backend falls back to Python, and both agree with HF."""
    vocab = {i: bytes([i]) for i in range(256)}
    merges = [(b"a", b"b"), (b"ab", b"c"), (b"b", b"c"), (b"a", b"bc")]
    vocab.update({256: b"ab", 257: b"abc", 258: b"bc"})
    tok = Tokenizer(vocab, merges=merges)
    with pytest.warns(UserWarning, match="fast backend unavailable"):
        fast = tok.encode("abc xbc abcbc", backend="fast")
    assert fast == tok.encode("abc xbc abcbc", backend="python")
    hf = _hf(tok, tmp_path)
    for text in ["abc", "abcbc", "xbc abc", "aabc"]:
        assert tok.encode(text) == hf.encode(text).ids
