"""Read GGUF files: metadata, raw (possibly quantized) tensor blocks, and dequantization.

    g = read_gguf("model.gguf")
    g.architecture                  # "llama", "qwen2", "gpt2", ...
    g.metadata["llama.block_count"] # every key/value pair, as Python values
    t = g.tensors["blk.0.attn_q.weight"]
    t.qtype, t.shape, t.data        # GGMLQuantizationType, torch-order shape, raw uint8 blocks
    t.dequantize()                  # torch.float32 tensor of t.shape

The header is parsed here with `struct` rather than by `gguf.GGUFReader`: the reader builds one
numpy memmap view per string, which is slow for the 100k tokenizer strings of SmolLM2 (tests
check this parser agrees with GGUFReader). Tensor types, block sizes and the K-quant
dequantizers come from the `gguf` package; Q8_0, Q4_0 and Q4_1 (the formats of the bundled
model) are dequantized with vectorised torch code (tests check it equals `gguf.quants`).

Raw layout (what `lmforge.checkpoint.gguf_quant` repacks): `t.data` is a uint8 array
[rows, bytes_per_row] (rows = product of all but the last dimension). Each row is a run of
blocks of `t.block_size` weights stored in `t.type_size` bytes:
    Q8_0: fp16 d, int8 q[32]                 w = d * q
    Q4_0: fp16 d, uint8 qs[16]               w = d * (q - 8)
    Q4_1: fp16 d, fp16 m, uint8 qs[16]       w = d * q + m
with q[j] = qs[j] & 0xF and q[j + 16] = qs[j] >> 4. F32/F16/BF16 rows are the plain values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gguf_quants

from lmforge.errors import LmforgeError

GGUF_MAGIC = b"GGUF"

# Types we load (the list plus the other classic and K-quants the gguf package decodes).
SUPPORTED_QTYPES = {
    GGMLQuantizationType[name]
    for name in ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                 "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
}  # fmt: skip

# GGUF metadata value types -> struct format (scalars)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}  # fmt: skip
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
          6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}  # fmt: skip
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFTensor:
    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]  # PyTorch order: (out_features, in_features) for a linear weight
    data: np.ndarray  # raw bytes, uint8 [rows, bytes_per_row] (read-only memory map)

    @property
    def block_size(self) -> int:  # weights per block
        return GGML_QUANT_SIZES[self.qtype][0]

    @property
    def type_size(self) -> int:  # bytes per block
        return GGML_QUANT_SIZES[self.qtype][1]

    def dequantize(self) -> torch.Tensor:
        """The weights as a float32 tensor of `self.shape`."""
        return dequantize(self.data, self.qtype).reshape(self.shape)


@dataclass
class GGUFFile:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, GGUFTensor] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        """Architecture-scoped metadata: get("block_count") reads "<arch>.block_count"."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


def dequantize(raw: np.ndarray, qtype: GGMLQuantizationType) -> torch.Tensor:
    """Raw rows uint8 [rows, bytes_per_row] -> float32 [rows, weights_per_row]."""
    rows = raw.reshape(-1, raw.shape[-1]) if raw.ndim else raw.reshape(1, -1)
    if qtype == GGMLQuantizationType.F32:
        return torch.from_numpy(rows.view(np.float32).copy())
    if qtype == GGMLQuantizationType.F16:
        return torch.from_numpy(rows.view(np.float16).astype(np.float32))
    if qtype == GGMLQuantizationType.BF16:
        return torch.from_numpy(rows.view(np.int16).copy()).view(torch.bfloat16).float()
    if qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1):
        return _dequantize_classic(rows, qtype)
    return torch.from_numpy(np.ascontiguousarray(gguf_quants.dequantize(rows, qtype), np.float32))


def _dequantize_classic(rows: np.ndarray, qtype: GGMLQuantizationType) -> torch.Tensor:
    n_rows = rows.shape[0]
    block_bytes = GGML_QUANT_SIZES[qtype][1]
    blocks = torch.from_numpy(np.array(rows)).view(n_rows, -1, block_bytes)  # [R, nb, bytes] (copy)
    d = blocks[..., :2].contiguous().view(torch.float16).float()  # [R, nb, 1] scale
    if qtype == GGMLQuantizationType.Q8_0:
        q = blocks[..., 2:].contiguous().view(torch.int8).float()  # [R, nb, 32]
        return (d * q).reshape(n_rows, -1)
    start = 2 if qtype == GGMLQuantizationType.Q4_0 else 4
    qs = blocks[..., start:]  # [R, nb, 16] two 4-bit weights per byte
    q = torch.cat([qs & 0xF, qs >> 4], dim=-1).float()  # [R, nb, 32]: low nibbles first
    if qtype == GGMLQuantizationType.Q4_0:
        return (d * (q - 8)).reshape(n_rows, -1)
    m = blocks[..., 2:4].contiguous().view(torch.float16).float()  # [R, nb, 1] minimum
    return (d * q + m).reshape(n_rows, -1)


class _Cursor:
    """Reads little-endian GGUF values from a byte buffer, failing clearly at its end."""

    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def _take(self, n: int) -> int:
        start = self.pos
        if start + n > len(self.buf):
            raise LmforgeError(
                f"{self.path}: truncated GGUF file (header ends early at byte {start})"
            )
        self.pos += n
        return start

    def scalar(self, vtype: int) -> Any:
        fmt = _SCALARS[vtype]
        return struct.unpack_from(fmt, self.buf, self._take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar(10)
        start = self._take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.scalar(4), self.scalar(10)
            if item_type == _STRING:
                return [self.string() for _ in range(count)]
            if item_type in _NUMPY:
                dtype = np.dtype(_NUMPY[item_type])
                start = self._take(count * dtype.itemsize)
                return np.frombuffer(self.buf, dtype=dtype, count=count, offset=start).tolist()
            return [self.value(item_type) for _ in range(count)]  # nested arrays
        if vtype not in _SCALARS:
            raise LmforgeError(f"{self.path}: corrupt GGUF file (unknown value type {vtype})")
        return self.scalar(vtype)


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse a GGUF file's metadata and tensor directory; tensor data stays memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"GGUF file not found: {path}")
    try:
        mm = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:  # e.g. an empty file cannot be mapped
        raise LmforgeError(f"{path}: cannot read GGUF file ({e})") from e
    buf = memoryview(mm)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise LmforgeError(f"{path}: not a GGUF file (bad magic bytes)")
    cur = _Cursor(buf, path)
    cur.pos = 4
    version = cur.scalar(4)
    if version not in (2, 3):
        raise LmforgeError(f"{path}: unsupported GGUF version {version} (2 and 3 are read)")
    n_tensors, n_kv = cur.scalar(10), cur.scalar(10)
    if n_tensors > len(buf) or n_kv > len(buf):
        raise LmforgeError(f"{path}: corrupt GGUF file (implausible counts)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar(4))

    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar(4)
        if n_dims > 8:
            raise LmforgeError(f"{path}: corrupt GGUF file (tensor {name!r} has {n_dims} dims)")
        ne = [cur.scalar(10) for _ in range(n_dims)]  # GGUF order: fastest-varying first
        raw_type, offset = cur.scalar(4), cur.scalar(10)
        infos.append((name, ne, raw_type, offset))

    alignment = int(metadata.get("general.alignment", 32))
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    gguf = GGUFFile(path=path, version=version, metadata=metadata)
    for name, ne, raw_type, offset in infos:
        try:
            qtype = GGMLQuantizationType(raw_type)
        except ValueError:
            raise LmforgeError(
                f"{path}: tensor {name!r} has unknown GGML type {raw_type}"
            ) from None
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        row = ne[0] if ne else 1
        if row % block_size:
            raise LmforgeError(
                f"{path}: corrupt GGUF file (tensor {name!r} row {row} vs block {block_size})"
            )
        n_rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
        row_bytes = row // block_size * type_size
        start = data_start + offset
        if start + n_rows * row_bytes > len(mm):
            raise LmforgeError(f"{path}: truncated GGUF file (tensor {name!r} data is cut off)")
        data = mm[start : start + n_rows * row_bytes].reshape(n_rows, row_bytes)
        shape = tuple(int(d) for d in reversed(ne))
        gguf.tensors[name] = GGUFTensor(name=name, qtype=qtype, shape=shape, data=data)
    return gguf
