"""Byte-level BPE training.

1. Pre-tokenize: split the corpus on special tokens (they never take part in merges), split
   each part with the pattern, and count unique pieces. Files are streamed in blocks cut at
   safe places and counted on several processes, so memory holds the piece counts and a few
   blocks, never the corpus.
2. Merge: start from the 256 bytes; each piece is a list of symbols. Keep pair counts, an index
   from each pair to the pieces that contain it, and a max-heap of pairs. Repeatedly take the
   most frequent pair (ties: the lexicographically greatest pair of byte strings), merge it in
   the pieces that contain it and update only the counts those pieces change.

The result is deterministic: it depends on the corpus and settings only, not on the number of
workers or the machine.

Ids of the result: special tokens first (in the order given), then the 256 bytes in GPT-2
printable-character order (as HF's ByteLevel trainer), then one id per merge.
"""

from __future__ import annotations

import codecs
import heapq
import itertools
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import byte_order
from lmforge.tokenizer.core import Tokenizer
from lmforge.tokenizer.patterns import resolve_pattern

BLOCK_CHARS = 1 << 20  # pre-tokenization work unit (characters); fixed, so results never vary
_SHIFT = 20  # pair key = left << _SHIFT | right (ids stay below 2**20)
_MASK = (1 << _SHIFT) - 1
MAX_VOCAB = 1 << _SHIFT
_ESCAPED_BYTE = regex.compile(r"[\udc80-\udcff]")  # how surrogateescape spells a non-UTF-8 byte


# ---------------------------------------------------------------------- pre-tokenization

_worker_state: tuple[regex.Pattern, regex.Pattern | None] | None = None


def _init_worker(pattern: str, special_pattern: str | None) -> None:
    global _worker_state
    _worker_state = (
        regex.compile(pattern),
        regex.compile(special_pattern) if special_pattern else None,
    )


def _count_block(texts: list[str]) -> Counter[str]:
    """Piece counts of a list of texts (run in a worker or in-process)."""
    assert _worker_state is not None
    pat, special = _worker_state
    counts: Counter[str] = Counter()
    for text in texts:
        parts = special.split(text) if special is not None else [text]
        for part in parts:
            counts.update(pat.findall(part))
    return counts


def _safe_cut(buf: str) -> int:
    """Index just after the last newline with non-space on both sides (0 if none).

    The named patterns never join a piece across such a newline, so counting the two halves
    separately gives the same pieces as counting them together.
    """
    i = buf.rfind("\n", 0, len(buf) - 1)
    while i > 0:
        if not buf[i - 1].isspace() and not buf[i + 1].isspace():
            return i + 1
        i = buf.rfind("\n", 0, i)
    return 0


def _match_cut(buf: str, pat: regex.Pattern, specials: Sequence[str], margin: int = 4096) -> int:
    """A cut at a piece boundary, for any pattern without look-behind (0 if none).

    Matching from a piece boundary does not depend on the text before it, and a piece that
    ends in a non-space character well before the end of the buffer used no look-ahead past
    it, so both halves give the same pieces as the whole. The cut must not split a special
    token either.
    """
    limit = len(buf) - margin
    ends = [m.end() for m in pat.finditer(buf, 0, max(limit, 0))]
    for e in reversed(ends[:-1]):  # the last match may have been cut short by `limit`
        if buf[e - 1].isspace():
            continue
        if any(s in buf[max(e - len(s) + 1, 0) : e + len(s) - 1] for s in specials):
            continue
        return e
    return 0


def _file_blocks(
    path: Path, stats: dict[str, int], pattern: str, named: bool, specials: Sequence[str]
) -> Iterator[list[str]]:
    """Stream a file as text blocks cut where pre-tokenization cannot join text across the cut.

    Bytes that are not UTF-8 are kept (as surrogate escapes, so each becomes a byte token) and
    counted.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buf = ""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - a streaming generator; closed by `with` below
    except OSError as exc:
        raise LmforgeError(f"cannot read corpus file {str(path)!r}: {exc.strerror}") from None
    pat = regex.compile(pattern)
    with fh:
        while True:
            try:
                raw = fh.read(BLOCK_CHARS)
            except OSError as exc:
                raise LmforgeError(
                    f"cannot read corpus file {str(path)!r}: {exc.strerror}"
                ) from None
            final = not raw
            text = decoder.decode(raw, final=final)
            stats["bytes"] += len(raw)
            stats["invalid_bytes"] += len(_ESCAPED_BYTE.findall(text))
            buf += text
            if final:
                if buf:
                    yield [buf]
                return
            while len(buf) >= 2 * BLOCK_CHARS:
                window = buf[: 2 * BLOCK_CHARS]
                cut = _safe_cut(window) if named else 0
                if named and any(s in window for s in specials if "\n" in s):
                    cut = 0  # a special token spanning a newline: use the general rule
                if cut == 0:
                    cut = _match_cut(window, pat, specials)
                if cut == 0:
                    break  # no piece boundary yet (one huge piece): read more
                yield [buf[:cut]]
                buf = buf[cut:]


def _text_blocks(texts: Iterable[str], stats: dict[str, int]) -> Iterator[list[str]]:
    """Group an iterable of documents into lists of about BLOCK_CHARS characters."""
    block: list[str] = []
    size = 0
    for t in texts:
        if not isinstance(t, str):
            raise LmforgeError(f"training texts must be str, got {type(t).__name__}")
        block.append(t)
        size += len(t)
        stats["bytes"] += len(t)
        if size >= BLOCK_CHARS:
            yield block
            block, size = [], 0
    if block:
        yield block


def count_pieces(
    blocks: Iterable[list[str]],
    pattern: str,
    special_tokens: Sequence[str] = (),
    *,
    workers: int = 1,
    progress: bool = False,
) -> Counter[str]:
    """Count pre-tokenized pieces over blocks of text, on `workers` processes."""
    special_pattern = (
        "|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
        if special_tokens
        else None
    )
    total: Counter[str] = Counter()
    bar = _bar(progress, desc="pre-tokenize", unit="char", unit_scale=True)
    blocks = iter(blocks)
    head = list(itertools.islice(blocks, 2))
    blocks = itertools.chain(head, blocks)
    if workers <= 1 or len(head) < 2:  # one block: starting processes costs more than it saves
        _init_worker(pattern, special_pattern)
        for block in blocks:
            total.update(_count_block(block))
            bar.update(sum(map(len, block)))
        bar.close()
        return total
    # fork, not spawn: spawn re-runs the caller's script in each worker unless it has a
    # `__main__` guard, which a library cannot demand of its callers.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(pattern, special_pattern)) as pool:
        pending = []
        # A bounded window of blocks in flight keeps memory flat on corpora larger than RAM.
        for block in blocks:
            pending.append((sum(map(len, block)), pool.apply_async(_count_block, (block,))))
            if len(pending) >= 2 * workers:
                size, result = pending.pop(0)
                total.update(result.get())
                bar.update(size)
        for size, result in pending:
            total.update(result.get())
            bar.update(size)
    bar.close()
    return total


# ---------------------------------------------------------------------- merging


def _inverted(token: bytes) -> tuple[int, ...]:
    """A key that sorts byte strings in descending order (so a min-heap pops the greatest)."""
    return (*(255 - x for x in token), 256)


def learn_merges(
    piece_counts: dict[bytes, int],
    num_merges: int,
    *,
    min_frequency: int = 1,
    progress: bool = False,
) -> tuple[list[tuple[int, int]], list[bytes]]:
    """Learn merges from piece counts until `num_merges` new tokens exist (or no pair is left).

    Returns (merges, tokens): merges as pairs of internal ids, and tokens[i] = bytes of internal
    id i (0..255 are the bytes, 256 + k is the result of merge k).
    """
    tokens: list[bytes] = [bytes([b]) for b in range(256)]
    token_id: dict[bytes, int] = {t: i for i, t in enumerate(tokens)}
    inverted: list[tuple[int, ...]] = [_inverted(t) for t in tokens]

    words: list[list[int]] = []
    freqs: list[int] = []
    for piece, count in piece_counts.items():
        if len(piece) > 1:
            words.append(list(piece))
            freqs.append(count)

    pair_counts: dict[int, int] = {}
    where: dict[int, set[int]] = {}
    for wi, w in enumerate(words):
        f = freqs[wi]
        for k in map(int.__or__, [x << _SHIFT for x in w[:-1]], w[1:]):
            pair_counts[k] = pair_counts.get(k, 0) + f
            s = where.get(k)
            if s is None:
                where[k] = {wi}
            else:
                s.add(wi)

    def entry(k: int, c: int) -> tuple[int, tuple[int, ...], int]:
        return (-c, inverted[k >> _SHIFT] + inverted[k & _MASK], k)

    heap = [entry(k, c) for k, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    bar = _bar(progress, total=num_merges, desc="merges", unit="merge")
    # `num_merges` counts new tokens: a merge that rebuilds existing bytes (a + bc == ab + c)
    # adds a merge rule but no token, as in HF.
    while len(tokens) < 256 + num_merges and heap:
        neg, _, key = heapq.heappop(heap)
        count = pair_counts.get(key, 0)
        if count != -neg:
            # Stale entry: counts of existing pairs only fall, so re-queue at the true count.
            if count >= min_frequency and count > 0:
                heapq.heappush(heap, entry(key, count))
            continue
        if count < min_frequency:
            break
        a, b = key >> _SHIFT, key & _MASK
        merged = tokens[a] + tokens[b]
        new = token_id.get(merged)
        if new is None:  # the same bytes can come from two different merges; keep one id
            new = len(tokens)
            tokens.append(merged)
            token_id[merged] = new
            inverted.append(_inverted(merged))
            bar.update(1)
        merges.append((a, b))

        touched: set[int] = set()
        for wi in where.pop(key, ()):
            w = words[wi]
            f = freqs[wi]
            i = -1
            # Merge each occurrence left to right, moving the counts of its neighbours' pairs
            # from the old symbols to the new one. Only those pairs change.
            while True:
                try:
                    i = w.index(a, i + 1)
                except ValueError:
                    break
                if i + 1 == len(w) or w[i + 1] != b:
                    continue
                if i > 0:
                    prev = w[i - 1]
                    pair_counts[prev << _SHIFT | a] -= f
                    k = prev << _SHIFT | new
                    pair_counts[k] = pair_counts.get(k, 0) + f
                    touched.add(k)
                    s = where.get(k)
                    if s is None:
                        where[k] = {wi}
                    else:
                        s.add(wi)
                if i + 2 < len(w):
                    nxt = w[i + 2]
                    pair_counts[b << _SHIFT | nxt] -= f
                    k = new << _SHIFT | nxt
                    pair_counts[k] = pair_counts.get(k, 0) + f
                    touched.add(k)
                    s = where.get(k)
                    if s is None:
                        where[k] = {wi}
                    else:
                        s.add(wi)
                w[i : i + 2] = [new]
        pair_counts.pop(key, None)
        for k in touched:
            c = pair_counts.get(k, 0)
            if c > 0:
                heapq.heappush(heap, entry(k, c))
    bar.close()
    return merges, tokens


# ---------------------------------------------------------------------- public entry point


def train_bpe(
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    vocab_size: int = 4096,
    *,
    texts: Iterable[str] | None = None,
    pattern: str = "gpt2",
    special_tokens: Sequence[str] = (),
    min_frequency: int = 1,
    workers: int | None = None,
    progress: bool | None = None,
    name: str = "lmforge",
) -> Tokenizer:
    """Train a byte-level BPE tokenizer on files and/or an iterable of strings.

    Args:
        files: one path or a list of paths (read as UTF-8; invalid bytes are kept as bytes).
        vocab_size: final vocabulary size: special tokens + 256 bytes + merges.
        texts: documents as strings (alternative or addition to files).
        pattern: pre-tokenizer name ("gpt2", "gpt4", "o200k", "llama3", "smollm") or regex.
        special_tokens: strings that get their own ids, never split and never merged across.
        min_frequency: stop early when the best pair occurs fewer times than this.
        workers: pre-tokenization processes (default: all cores).
        progress: show progress bars (default: when stderr is a terminal).
    """
    pat, pattern_name = resolve_pattern(pattern)
    special_tokens = list(dict.fromkeys(special_tokens))
    if any(not s for s in special_tokens):
        raise LmforgeError("special tokens must be non-empty strings")
    floor = 256 + len(special_tokens)
    if vocab_size < floor:
        raise LmforgeError(
            f"vocab size {vocab_size} is too small: it must be at least 256 + "
            f"{len(special_tokens)} special token(s) = {floor}"
        )
    if vocab_size > MAX_VOCAB:
        raise LmforgeError(f"vocab size {vocab_size} is too large (at most {MAX_VOCAB})")
    if files is None and texts is None:
        raise LmforgeError("nothing to train on: give corpus files or texts")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [Path(f) for f in files or ()]
    for p in paths:
        if not p.exists():
            raise LmforgeError(f"corpus file not found: {str(p)!r}")
        if not p.is_file():
            raise LmforgeError(f"corpus path is not a file: {str(p)!r}")
        if not os.access(p, os.R_OK):
            raise LmforgeError(f"cannot read corpus file {str(p)!r}: permission denied")
    if progress is None:
        progress = sys.stderr.isatty()
    if workers is None:
        workers = os.cpu_count() or 1

    stats = {"bytes": 0, "invalid_bytes": 0}

    def blocks() -> Iterator[list[str]]:
        for p in paths:
            yield from _file_blocks(p, stats, pat, pattern_name is not None, special_tokens)
        if texts is not None:
            yield from _text_blocks(texts, stats)

    counts = count_pieces(blocks(), pat, special_tokens, workers=workers, progress=progress)
    if not counts:
        what = ", ".join(repr(str(p)) for p in paths) or "the given texts"
        raise LmforgeError(f"empty corpus: no text to train on in {what}")
    if stats["invalid_bytes"]:
        print(
            f"lmforge: warning: {stats['invalid_bytes']} byte(s) of the corpus are not valid "
            "UTF-8; they were kept as raw bytes",
            file=sys.stderr,
        )

    piece_counts: dict[bytes, int] = {}
    for piece, c in counts.items():
        key = piece.encode("utf-8", errors="surrogateescape")
        piece_counts[key] = piece_counts.get(key, 0) + c
    del counts

    num_merges = vocab_size - floor
    merges, tokens = learn_merges(
        piece_counts, num_merges, min_frequency=min_frequency, progress=progress
    )

    # Final ids: specials, then bytes in printable-character order, then merges.
    n_special = len(special_tokens)
    vocab: dict[int, bytes] = {}
    for pos, b in enumerate(byte_order()):
        vocab[n_special + pos] = tokens[b]
    for i in range(256, len(tokens)):
        vocab[n_special + i] = tokens[i]
    return Tokenizer(
        vocab,
        merges=[(tokens[a], tokens[b]) for a, b in merges],
        special_tokens={s: i for i, s in enumerate(special_tokens)},
        pattern=pattern_name or pat,
        name=name,
    )


def _bar(enabled: bool, **kwargs):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(**kwargs)
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
