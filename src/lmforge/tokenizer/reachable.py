"""Which tokens of a merge list BPE can actually produce, computed once per merge list.

The fast backend hands tiktoken a rank per token, and tiktoken merges any adjacent pair whose
concatenation is a token: a token that our merge rules never produce from its own bytes must be
left out, or tiktoken would produce it. Finding those means running BPE over every token, which
is ~0.4 s for a 49k-token vocabulary: most of a chat model's cold start after `import torch`.
The answer depends only on the merge list, so it is kept in the user's cache under the list's
SHA-256 (a few bytes: such tokens are rare) and recomputed whenever the file is missing or bad.
Short lists (freshly trained toy tokenizers) take milliseconds and are not cached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lmforge.assets import user_cache_dir

MIN_CACHED = 4096  # merges; below this, computing is about as fast as reading a file


def merges_digest(merges: Sequence[tuple[bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for a, b in merges:  # lengths first, so that (b"ab", b"c") and (b"a", b"bc") differ
        h.update(len(a).to_bytes(4, "little") + len(b).to_bytes(4, "little") + a + b)
    return h.hexdigest()


def find_unreachable(
    merges: Sequence[tuple[bytes, bytes]], bpe: Callable[[bytes], list[bytes]]
) -> set[bytes]:
    """Tokens created by a merge that `bpe` (split to bytes, merge by rank) does not rebuild."""
    return {a + b for a, b in merges if bpe(a + b) != [a + b]}


def unreachable_tokens(
    merges: Sequence[tuple[bytes, bytes]],
    bpe: Callable[[bytes], list[bytes]],
    cache_dir: Path | None = None,
) -> set[bytes]:
    """`find_unreachable`, read from the cache when this merge list was seen before."""
    if len(merges) < MIN_CACHED:
        return find_unreachable(merges, bpe)
    path = (cache_dir or user_cache_dir() / "bpe") / f"{merges_digest(merges)}.json"
    try:
        return {base64.b64decode(t) for t in json.loads(path.read_text(encoding="ascii"))}
    except (OSError, ValueError, TypeError):
        pass  # missing, unreadable or corrupt: recompute and rewrite
    unreachable = find_unreachable(merges, bpe)
    payload = json.dumps(sorted(base64.b64encode(t).decode("ascii") for t in unreachable))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(payload, encoding="ascii")
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    except OSError:
        pass  # a read-only cache only costs time
    return unreachable
