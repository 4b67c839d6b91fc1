"""BPE training: exact parity with the reference, determinism, specials, bad input."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizer import train as train_mod
from lmforge.tokenizer import train_bpe
from lmforge.tokenizer.byte_unicode import str_to_token, token_to_str
from lmforge.tokenizer.patterns import PATTERNS


def test_reference_parity(shared_data: Path) -> None:
    """Acceptance 1: corpus.en, vocab 500, <|endoftext|>, GPT-2 pattern -> the reference files."""
    ref = shared_data / "bpe-reference"
    tok = train_bpe(
        ref / "corpus.en", 500, special_tokens=["<|endoftext|>"], pattern="gpt2", progress=False
    )
    expected_merges = (ref / "train-bpe-reference-merges.txt").read_text("utf-8").splitlines()
    merges = [f"{token_to_str(a)} {token_to_str(b)}" for a, b in tok.merges]
    assert merges == expected_merges

    expected_vocab = json.loads((ref / "train-bpe-reference-vocab.json").read_text("utf-8"))
    vocab = {token_to_str(t): i for i, t in tok.vocab.items()}
    vocab.update(tok.special_tokens)
    assert vocab == expected_vocab
    assert tok.vocab_size == 500


def _naive_train(text: str, num_merges: int, pattern: str) -> list[tuple[bytes, bytes]]:
    """Textbook BPE: recount every pair after every merge (slow, obviously right)."""
    words = Counter(p.encode() for p in regex.findall(pattern, text))
    seqs = {w: [bytes([b]) for b in w] for w in words}
    merges = []
    for _ in range(num_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, seq in seqs.items():
            for pair in pairwise(seq):
                pairs[pair] += words[w]
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))  # most frequent, then greatest pair
        merges.append(best)
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out
    return merges


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_incremental_updates_match_naive_bpe(python_docs: str, pattern: str) -> None:
    text = python_docs[:15_000]
    tok = train_bpe(texts=[text], vocab_size=256 + 150, pattern=pattern, progress=False)
    assert tok.merges == _naive_train(text, 150, PATTERNS[pattern])


def test_deterministic_across_workers_and_inputs(
    python_docs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small blocks on two processes == one process == the same text given as strings."""
    monkeypatch.setattr(train_mod, "BLOCK_CHARS", 4096)
    corpus = tmp_path / "docs.txt"
    corpus.write_text(python_docs[:60_000], "utf-8")
    one = train_bpe(corpus, 600, workers=1, progress=False)
    two = train_bpe(corpus, 600, workers=2, progress=False)
    monkeypatch.setattr(train_mod, "BLOCK_CHARS", 1 << 20)
    texts = train_bpe(texts=[python_docs[:60_000]], vocab_size=600, workers=1, progress=False)
    assert one.merges == two.merges == texts.merges
    assert one.vocab == two.vocab == texts.vocab


@pytest.mark.parametrize("name", ["gpt2", "gpt4", "o200k", "llama3", "smollm"])
def test_block_cuts_do_not_change_pieces(python_docs: str, shakespeare: str, name: str) -> None:
    """Streaming cuts the corpus only where no named pattern joins text across the cut."""
    pat = regex.compile(PATTERNS[name])
    rng = random.Random(0)
    text = python_docs[:40_000] + shakespeare[:20_000]
    for _ in range(30):
        end = rng.randrange(100, len(text))
        cut = train_mod._safe_cut(text[:end])
        if cut == 0:
            continue
        assert pat.findall(text[:cut]) + pat.findall(text[cut:]) == pat.findall(text)


def test_special_tokens_are_never_merged_across() -> None:
    special = "<|endoftext|>"
    docs = [f"hello world{special}hello again{special}" * 50, "xyz" * 10]
    tok = train_bpe(texts=docs, vocab_size=300, special_tokens=[special, "<pad>"], progress=False)
    assert tok.special_tokens == {special: 0, "<pad>": 1}
    # No learned token contains any part of the special token's text next to the words around it.
    assert not any(b"<|" in t or b"|>" in t or b"endoftext" in t for t in tok.vocab.values())
    ids = tok.encode(f"hello{special}world", allowed_special="all")
    assert ids.count(0) == 1
    assert tok.decode(ids) == f"hello{special}world"


def test_invalid_utf8_corpus_is_kept_as_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(("caf\xe9 na\xefve " * 200).encode("latin-1") + b"\xff\xfe\xff\xfe" * 50)
    tok = train_bpe(corpus, 300, progress=False)
    assert "not valid UTF-8" in capsys.readouterr().err
    learned = set(tok.vocab.values())
    assert b"\xff\xfe" in learned  # the invalid bytes were counted and merged as bytes
    assert b" caf" in learned and b" na" in learned  # the valid text around them too


def test_stops_when_pairs_run_out() -> None:
    tok = train_bpe(texts=["ab ab ab"], vocab_size=5000, progress=False)
    assert [token_to_str(a) + " " + token_to_str(b) for a, b in tok.merges] == [
        "a b",
        "Ġ ab",
    ]
    assert tok.vocab_size == 258


def test_ids_layout() -> None:
    tok = train_bpe(texts=["hello hello"], vocab_size=260, special_tokens=["<s>"], progress=False)
    assert tok.special_tokens == {"<s>": 0}
    assert tok.vocab[1] == str_to_token("!")  # the alphabet in printable-character order
    assert tok.vocab[257] == tok.merges[0][0] + tok.merges[0][1]


def test_vocab_size_too_small() -> None:
    with pytest.raises(LmforgeError, match="vocab size 256 is too small"):
        train_bpe(texts=["abc"], vocab_size=256, special_tokens=["<s>"])


def test_empty_corpus(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(LmforgeError, match=r"empty corpus.*empty\.txt"):
        train_bpe(empty, 300)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"corpus file not found.*nope\.txt"):
        train_bpe(tmp_path / "nope.txt", 300)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    with pytest.raises(LmforgeError, match=r"cannot read corpus file.*locked\.txt"):
        train_bpe(locked, 300)


def test_directory_is_not_a_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="not a file"):
        train_bpe(tmp_path, 300)


def test_unknown_pattern_name() -> None:
    with pytest.raises(LmforgeError, match="unknown pattern name 'gpt5'"):
        train_bpe(texts=["abc"], vocab_size=300, pattern="gpt5")


def test_custom_pattern() -> None:
    tok = train_bpe(texts=["aa bb aa bb"], vocab_size=270, pattern=r"\S+|\s+", progress=False)
    assert tok.pattern_name is None
    assert tok.pattern == r"\S+|\s+"
    assert tok.decode(tok.encode("aa bb")) == "aa bb"


@pytest.mark.parametrize("name", ["gpt2", "gpt4", "smollm"])
def test_general_cuts_do_not_change_pieces(python_docs: str, name: str) -> None:
    """The fallback cut (any pattern): at a piece boundary, never inside a special token."""
    pat = regex.compile(PATTERNS[name])
    text = python_docs[:30_000].replace("\n", "<|sep|>")  # no newline to cut at
    rng = random.Random(1)
    for _ in range(10):
        end = rng.randrange(6000, len(text))
        cut = train_mod._match_cut(text[:end], pat, ["<|sep|>"])
        assert cut > 0
        left, right = text[:cut], text[cut:]
        assert pat.findall(left) + pat.findall(right) == pat.findall(text)
        assert left.count("<|sep|>") + right.count("<|sep|>") == text.count("<|sep|>")


def test_custom_pattern_streams_like_one_block(
    python_docs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train_mod, "BLOCK_CHARS", 2048)
    corpus = tmp_path / "docs.txt"
    corpus.write_text(python_docs[:40_000], "utf-8")
    custom = r"\s?[A-Za-z]+|\d|[^\sA-Za-z\d]+|\s+"
    streamed = train_bpe(corpus, 400, pattern=custom, workers=1, progress=False)
    whole = train_bpe(texts=[python_docs[:40_000]], vocab_size=400, pattern=custom, progress=False)
    assert streamed.merges == whole.merges
