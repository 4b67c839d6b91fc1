"""The cache of tokens BPE cannot reach: same answer as computing it, and never trusted blindly."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from lmforge.tokenizer import reachable
from lmforge.tokenizer.reachable import find_unreachable, merges_digest, unreachable_tokens


def _bpe_by(merges: list[tuple[bytes, bytes]]):
    """A minimal merge-by-rank BPE for the test (the Tokenizer's own `_merge` is the real one)."""
    ranks = {pair: r for r, pair in enumerate(merges)}

    def bpe(piece: bytes) -> list[bytes]:
        parts = [piece[i : i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(pairwise(parts))]
            rank, i = min(pairs)
            if rank == len(ranks):
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return parts

    return bpe


# "bc" merges before "ab", so "abc" splits as a|bc: the merge (ab, c) never fires.
MERGES = [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c"), (b"a", b"bc")]


def test_find_unreachable_names_the_token_bpe_never_builds() -> None:
    assert find_unreachable(MERGES[:3], _bpe_by(MERGES[:3])) == {b"abc"}


def test_cached_answer_equals_computed_and_corrupt_file_is_recomputed(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(reachable, "MIN_CACHED", 0)
    merges = MERGES[:3]
    calls = []

    def counting_bpe(piece: bytes) -> list[bytes]:
        calls.append(piece)
        return _bpe_by(merges)(piece)

    first = unreachable_tokens(merges, counting_bpe, cache_dir=tmp_path)
    n = len(calls)
    assert first == {b"abc"} and n == 3
    assert unreachable_tokens(merges, counting_bpe, cache_dir=tmp_path) == first
    assert len(calls) == n  # read from the file, not recomputed

    (tmp_path / f"{merges_digest(merges)}.json").write_text("{not json", encoding="ascii")
    assert unreachable_tokens(merges, counting_bpe, cache_dir=tmp_path) == first
    assert len(calls) == 2 * n


def test_digest_tells_split_points_apart() -> None:
    assert merges_digest([(b"ab", b"c")]) != merges_digest([(b"a", b"bc")])
