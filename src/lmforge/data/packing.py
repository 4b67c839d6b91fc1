"""Packing prepared shards into training batches.

A split is one long token stream (shards back to back; documents each end with EOS). A batch is
`batch_size` windows of `block_size + 1` tokens: inputs are the first `block_size`, targets the
same shifted by one. Two ways to choose windows:

- "random" (nanoGPT): each window starts at a uniformly random offset.
- "sequential": documents are laid end to end in an order, "shuffle" (a new permutation each
  epoch), "length" (a curriculum, short to long) or "corpus" (as prepared), and cut into
  consecutive windows.

Batches are a pure function of (seed, step): the "data position" of a run is just its step, so a
resumed run sees exactly the batches an uninterrupted one would, and rank r of a data-parallel
run takes rows [r*B, (r+1)*B) of the same global batch a single process would use.

Document-boundary masking: with `doc_mask=True` a batch also carries `positions` [B, T] that
restart at 0 after every EOS, and `mask` [B, 1, T, T] (True = may attend) that is causal and
block-diagonal over documents, so attention never crosses a document boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmforge.data.shards import open_split, read_meta
from lmforge.errors import LmforgeError

ORDERS = ("shuffle", "length", "corpus")
MODES = ("random", "sequential")


class TokenStream:
    """One split as a virtual concatenation of memory-mapped shards."""

    def __init__(self, directory: str | Path, split: str, meta: dict | None = None) -> None:
        self.meta = meta or read_meta(directory)
        self.shards = open_split(directory, split, self.meta)
        if not self.shards:
            raise LmforgeError(f"{directory}: split {split!r} has no tokens")
        sizes = np.array([s.tokens.size for s in self.shards], dtype=np.int64)
        self.shard_offsets = np.concatenate([[0], np.cumsum(sizes)])  # [n_shards + 1]
        self.total = int(self.shard_offsets[-1])
        # Global document starts over the virtual stream (last entry = total).
        starts = [
            s.starts[:-1] + off for s, off in zip(self.shards, self.shard_offsets[:-1], strict=True)
        ]
        self.doc_starts = np.concatenate([*starts, [self.total]]).astype(np.int64)
        self.doc_lengths = np.diff(self.doc_starts)

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream, across shard boundaries."""
        k = int(np.searchsorted(self.shard_offsets, start, side="right")) - 1
        parts, need = [], length
        while need > 0:
            shard = self.shards[k].tokens
            lo = start - int(self.shard_offsets[k])
            piece = shard[lo : lo + need]
            parts.append(piece)
            need -= piece.size
            start += piece.size
            k += 1
        return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])


@dataclass
class Batch:
    x: torch.Tensor  # [B, T] int64 inputs
    y: torch.Tensor  # [B, T] int64 targets
    positions: torch.Tensor | None = None  # [B, T] int64, restart at document starts
    mask: torch.Tensor | None = None  # [B, 1, T, T] bool, True = may attend

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) if t is not None else None for t in
                       (self.x, self.y, self.positions, self.mask)))  # fmt: skip


class Batcher:
    """Deterministic batches: `batch(step, rank, world)` -> this rank's rows of the global batch."""

    def __init__(
        self,
        stream: TokenStream,
        block_size: int,
        batch_size: int,  # global rows per step (all ranks and micro-steps together)
        *,
        mode: str = "random",
        order: str = "shuffle",
        seed: int = 1337,
        doc_mask: bool = False,
        eos_id: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise LmforgeError(f"data.sampling must be one of {MODES}, got {mode!r}")
        if order not in ORDERS:
            raise LmforgeError(f"data.order must be one of {ORDERS}, got {order!r}")
        if stream.total <= block_size + 1:
            raise LmforgeError(
                f"the split has {stream.total} tokens, fewer than one block of {block_size + 1}"
            )
        self.stream, self.block_size, self.batch_size = stream, block_size, batch_size
        self.mode, self.order, self.seed = mode, order, seed
        self.doc_mask, self.eos_id = doc_mask, eos_id
        self._epoch_cache: tuple[int, np.ndarray, np.ndarray] | None = None
        # Sequential: consecutive windows of block_size (+1 overlapping target token).
        self.windows_per_epoch = (stream.total - 1) // block_size

    # -- window selection ---------------------------------------------------------------------
    def _rows(self, step: int, lo: int, hi: int) -> np.ndarray:
        """Token windows [hi - lo, block_size + 1] for global rows lo..hi-1 of `step`."""
        T = self.block_size
        if self.mode == "random":
            rng = np.random.default_rng([self.seed, step])
            starts = rng.integers(0, self.stream.total - T, size=self.batch_size)[lo:hi]
            return np.stack([self.stream.read(int(s), T + 1) for s in starts])
        rows = []
        for r in range(lo, hi):
            k = step * self.batch_size + r
            epoch, w = divmod(k, self.windows_per_epoch)
            rows.append(self._sequential_window(epoch, w * T, T + 1))
        return np.stack(rows)

    def _epoch_layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(documents in order, cumulative lengths) of one epoch; cached for the current one."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            lengths = self.stream.doc_lengths
            if self.order == "shuffle":
                order = np.random.default_rng([self.seed, 1_000_003, epoch]).permutation(
                    lengths.size
                )
            elif self.order == "length":
                order = np.argsort(lengths, kind="stable")
            else:
                order = np.arange(lengths.size)
            cum = np.concatenate([[0], np.cumsum(lengths[order])])
            self._epoch_cache = (epoch, order, cum)
        return self._epoch_cache[1], self._epoch_cache[2]

    def _sequential_window(self, epoch: int, pos: int, length: int) -> np.ndarray:
        order, cum = self._epoch_layout(epoch)
        parts = []
        while length > 0:
            if pos >= cum[-1]:  # run past the end of the epoch: continue with the next one
                epoch, pos = epoch + 1, pos - int(cum[-1])
                order, cum = self._epoch_layout(epoch)
                continue
            i = int(np.searchsorted(cum, pos, side="right")) - 1
            doc = int(order[i])
            within = pos - int(cum[i])
            take = min(length, int(self.stream.doc_lengths[doc]) - within)
            parts.append(self.stream.read(int(self.stream.doc_starts[doc]) + within, take))
            pos += take
            length -= take
        return np.concatenate(parts)

    # -- batches ----------------------------------------------------------------------------------
    def batch(
        self, step: int, rank: int = 0, world: int = 1, micro: int = 0, n_micro: int = 1
    ) -> Batch:
        """Rows of micro-step `micro` (of `n_micro`) for `rank` (of `world`) at `step`."""
        per = self.batch_size // (world * n_micro)
        if per * world * n_micro != self.batch_size:
            raise LmforgeError(
                f"batch size {self.batch_size} is not divisible by world size {world} x "
                f"gradient accumulation {n_micro}"
            )
        lo = (micro * world + rank) * per
        data = torch.from_numpy(self._rows(step, lo, lo + per).astype(np.int64))
        batch = Batch(data[:, :-1], data[:, 1:])
        if self.doc_mask and self.eos_id is not None:
            batch.positions, batch.mask = document_mask(batch.x, self.eos_id)
        return batch


def document_mask(x: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions restarting after each EOS, and the causal same-document mask.

    x: [B, T] -> positions [B, T] int64, mask [B, 1, T, T] bool. An EOS token belongs to the
    document it ends; the token after it starts a new document at position 0.
    """
    B, T = x.shape
    is_eos = x == eos_id
    starts_doc = torch.zeros_like(is_eos)
    starts_doc[:, 1:] = is_eos[:, :-1]
    starts_doc[:, 0] = True
    doc = torch.cumsum(starts_doc.to(torch.int64), dim=1)  # [B, T] document number in the row
    idx = torch.arange(T).expand(B, T)
    first = torch.cummax(torch.where(starts_doc, idx, torch.zeros_like(idx)), dim=1).values
    positions = idx - first
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    mask = (doc[:, :, None] == doc[:, None, :]) & causal  # [B, T, T]
    return positions, mask[:, None]
