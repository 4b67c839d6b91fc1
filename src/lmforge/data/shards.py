"""Token shards on disk: flat binary token files plus document offsets, read back by memmap.

Layout of a prepared directory:

    meta.json                 dtype, vocab size, EOS id, tokenizer, per-split shard lists, summary
    train_00000.bin           tokens (uint16 when the vocabulary fits, else uint32), documents
                              back to back, each followed by EOS
    train_00000.idx           uint64 offsets of document starts, plus the shard length at the end
    val_00000.bin / .idx      the same for the validation split
    tokenizer/                (char mode) the character tokenizer

Writers append, so corpora larger than memory stream through; readers memory-map.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError

META_FILE = "meta.json"
FORMAT = "lmforge-shards/1"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class ShardWriter:
    """Appends documents of one split to `{split}_{k:05d}.bin` shards of at most `shard_tokens`."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.directory = Path(directory)
        self.split = split
        self.dtype = np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []
        self._bin = self._idx = None
        self._len = 0
        self._docs = 0

    def _open(self) -> None:
        k = len(self.shards)
        name = f"{self.split}_{k:05d}"
        self.shards.append(
            {"bin": f"{name}.bin", "idx": f"{name}.idx", "tokens": 0, "documents": 0}
        )
        self._bin = open(self.directory / f"{name}.bin", "wb")  # noqa: SIM115 - kept open
        self._idx = open(self.directory / f"{name}.idx", "wb")  # noqa: SIM115
        self._len = 0
        self._docs = 0

    def _close_shard(self) -> None:
        if self._bin is None:
            return
        np.array([self._len], dtype=np.uint64).tofile(self._idx)
        self._bin.close()
        self._idx.close()
        self.shards[-1].update(tokens=self._len, documents=self._docs)
        self._bin = self._idx = None

    def write(self, tokens: np.ndarray) -> None:
        """Write one document (EOS already appended by the caller)."""
        if self._bin is None or (self._len and self._len + tokens.size > self.shard_tokens):
            self._close_shard()
            self._open()
        np.array([self._len], dtype=np.uint64).tofile(self._idx)
        np.ascontiguousarray(tokens, dtype=self.dtype).tofile(self._bin)
        self._len += int(tokens.size)
        self._docs += 1

    def close(self) -> list[dict]:
        self._close_shard()
        return self.shards


@dataclass
class Shard:
    tokens: np.ndarray  # memmap [n]
    starts: np.ndarray  # [n_docs + 1] document starts, last = n


def read_meta(directory: str | Path) -> dict:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise LmforgeError(
            f"{directory}: not a prepared data directory (no {META_FILE}); run `lmforge data prepare`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LmforgeError(f"{path}: corrupt JSON ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise LmforgeError(f"{path}: unknown format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def write_meta(directory: str | Path, meta: dict) -> None:
    """Atomic: write a temporary file, then rename, so a reader never sees half a meta.json."""
    path = Path(directory) / META_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def open_split(directory: str | Path, split: str, meta: dict | None = None) -> list[Shard]:
    """Memory-map every shard of a split."""
    directory = Path(directory)
    meta = meta or read_meta(directory)
    if split not in meta["splits"]:
        raise LmforgeError(f"{directory}: no split {split!r} (have {', '.join(meta['splits'])})")
    dtype = np.dtype(meta["dtype"])
    shards = []
    for info in meta["splits"][split]["shards"]:
        if info["tokens"] == 0:
            continue
        bin_path = directory / info["bin"]
        try:
            tokens = np.memmap(bin_path, dtype=dtype, mode="r")
            starts = np.fromfile(directory / info["idx"], dtype=np.uint64).astype(np.int64)
        except (OSError, ValueError) as exc:
            raise LmforgeError(f"{bin_path}: cannot read shard ({exc})") from exc
        if tokens.size != info["tokens"] or starts.size != info["documents"] + 1:
            raise LmforgeError(f"{bin_path}: shard size does not match {META_FILE} (truncated?)")
        shards.append(Shard(tokens, starts))
    return shards
