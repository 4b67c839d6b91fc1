"""Exact and near-duplicate detection.

Exact: a 16-byte BLAKE2 digest of the normalised text; the set of digests is all we keep.

Near: MinHash signatures with LSH banding (Broder 1997; Leskovec et al., "Mining of Massive
Datasets", ch. 3), written with numpy. A document's shingles are its character n-grams (after
lower-casing and collapsing whitespace), hashed to 32 bits with a vectorised rolling hash. Each of
`num_perm` universal hash functions h(x) = (a*x + b) mod p (p = 2**32 + 15, a prime above every
32-bit hash, so a*x + b fits in uint64) is applied to all shingles at once and the minimum kept.
The signature is cut into `bands` bands of `rows` rows; documents that share any band are
candidates. Bands and rows minimise a weighted sum of the false-positive and false-negative areas
under the S-curve 1 - (1 - s**r)**b (datasketch's criterion), weighted towards recall so that
pairs at the threshold almost always become candidates. A candidate is a duplicate when the
fraction of equal signature entries (an unbiased estimate of the Jaccard similarity, with standard
error sqrt(J(1-J)/num_perm)) reaches the threshold less one standard error: without that slack,
half of the pairs that sit exactly at the threshold would be missed to estimation noise.
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

_PRIME = np.uint64((1 << 32) + 15)
_WS_RE = re.compile(r"\s+")


def exact_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class ExactDeduplicator:
    """`seen(text_or_digest)` is True when the same text came before (then it's a duplicate)."""

    def __init__(self) -> None:
        self._digests: set[bytes] = set()

    def seen(self, digest: bytes) -> bool:
        if digest in self._digests:
            return True
        self._digests.add(digest)
        return False

    def __len__(self) -> int:
        return len(self._digests)


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Unique 32-bit hashes (as uint64) of the character n-grams of the canonicalised text."""
    canon = _WS_RE.sub(" ", text.lower()).strip()
    data = np.frombuffer(canon.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if data.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if data.size < ngram:  # short text: one shingle, the whole thing
        data = np.concatenate([data, np.zeros(ngram - data.size, dtype=np.uint64)])
    m = data.size - ngram + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrapping arithmetic mod 2**64 is the point
        for k in range(ngram):
            h = h * np.uint64(1_000_003) + data[k : k + m]
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    h = np.sort(h & np.uint64(0xFFFFFFFF))
    return h[np.r_[True, h[1:] != h[:-1]]]  # sort-based unique: faster than np.unique here


class MinHasher:
    """Vectorised MinHash: `signatures(texts)` -> [len(texts), num_perm] uint32."""

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.ngram = ngram
        self.a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64)[:, None]
        self.b = rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64)[:, None]

    def signatures(self, texts: list[str], chunk: int = 1 << 15) -> np.ndarray:
        hashes = [shingle_hashes(t, self.ngram) for t in texts]
        sizes = np.array([h.size for h in hashes], dtype=np.int64)
        out = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if sizes.sum() == 0:
            return out
        allh = np.concatenate(hashes)
        doc_of = np.repeat(np.arange(len(texts)), sizes)
        # Process shingles in chunks to bound the [num_perm, chunk] working set.
        for s in range(0, allh.size, chunk):
            h = allh[s : s + chunk]
            d = doc_of[s : s + chunk]
            v = (self.a * h[None, :] + self.b) % _PRIME  # [P, chunk], no overflow (see above)
            v = np.minimum(v, np.uint64(0xFFFFFFFF)).astype(np.uint32)
            # Per-document minimum within the chunk: segments are contiguous runs of d.
            starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
            mins = np.minimum.reduceat(v, starts, axis=1)  # [P, n_segments]
            docs = d[starts]
            out[docs] = np.minimum(out[docs], mins.T)
        return out

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text])[0]


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive + false-negative areas of the S-curve."""
    s = np.linspace(0.0, 1.0, 2001)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            fp = np.trapezoid(np.where(s < threshold, p, 0.0), s)
            fn = np.trapezoid(np.where(s >= threshold, 1.0 - p, 0.0), s)
            err = fp_weight * fp + (1.0 - fp_weight) * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


class MinHashLSH:
    """Streaming near-duplicate index: `add(signature)` -> True when a near duplicate exists.

    A document is checked against the index and, if it is new, inserted; so the first copy of a
    cluster is kept and later near copies are reported.
    """

    def __init__(
        self,
        threshold: float = 0.8,
        num_perm: int = 128,
        fp_weight: float = 0.1,
        slack: float = 1.0,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = optimal_bands(threshold, num_perm, fp_weight)
        stderr = (threshold * (1.0 - threshold) / num_perm) ** 0.5
        self.accept = threshold - slack * stderr  # estimated Jaccard needed to call a duplicate
        self._tables: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self._sigs = np.zeros((1024, num_perm), dtype=np.uint32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def query(self, sig: np.ndarray) -> int | None:
        """Index of a stored document with estimated Jaccard >= threshold, else None."""
        candidates: set[int] = set()
        for i, table in enumerate(self._tables):
            hits = table.get(sig[i * self.rows : (i + 1) * self.rows].tobytes())
            if hits:
                candidates.update(hits)
        if not candidates:
            return None
        idx = np.fromiter(candidates, dtype=np.int64)
        sim = (self._sigs[idx] == sig[None, :]).mean(axis=1)
        best = int(np.argmax(sim))
        return int(idx[best]) if sim[best] >= self.accept else None

    def insert(self, sig: np.ndarray) -> int:
        if self._n == self._sigs.shape[0]:
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[self._n] = sig
        for i, table in enumerate(self._tables):
            table.setdefault(sig[i * self.rows : (i + 1) * self.rows].tobytes(), []).append(self._n)
        self._n += 1
        return self._n - 1

    def add(self, sig: np.ndarray) -> bool:
        if self.query(sig) is not None:
            return True
        self.insert(sig)
        return False
