"""Tokenizer files: find the format of a path and read it (writing: `lmforge.tokenizer.save`).

load_tokenizer(path) accepts
  - a directory we wrote (lmforge_tokenizer.json), or one with tokenizer.json (HF),
    or GPT-2 files (encoder.json + vocab.bpe, or vocab.json + merges.txt);
  - a file: lmforge_tokenizer.json / tokenizer.json (told apart by content), *.tiktoken,
    *.gguf.
"""

from __future__ import annotations

from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.tokenizer.core import Tokenizer
from lmforge.tokenizer.formats import gpt2, hf, tiktoken_file
from lmforge.tokenizer.formats import native as native_format
from lmforge.tokenizer.save import (
    HF_CONFIG_FILENAME,
    HF_FILENAME,
    NATIVE_FILENAME,
    NATIVE_FORMAT,
    save_tokenizer,
)


def load_tokenizer(
    path: str | Path, *, pattern: str | None = None, backend: str | None = None
) -> Tokenizer:
    """Read a tokenizer from a directory or file (see the module docstring for formats), or a
    bundled model's by its registered name (lmforge.assets.MODELS).

    pattern: pre-tokenizer for a `.tiktoken` file whose name does not tell it.
    backend: "fast" or "python" (default: fast).
    """
    tok = _load(Path(path), pattern)
    if backend is not None:
        if backend not in ("fast", "python"):
            raise LmforgeError(f"unknown tokenizer backend {backend!r} (use 'fast' or 'python')")
        tok.backend = backend  # type: ignore[assignment]
    return tok


def _load(path: Path, pattern: str | None) -> Tokenizer:
    if not path.exists():
        from lmforge.assets import model_asset  # here: a file path needs no registry

        bundled = model_asset(str(path))
        if bundled is not None:
            return _load(bundled.path(), pattern)
        raise LmforgeError(f"tokenizer not found: {str(path)!r}")
    if path.is_dir():
        for name in (NATIVE_FILENAME, HF_FILENAME):
            if (path / name).is_file():
                return _load(path / name, pattern)
        for vocab, merges in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")):
            if (path / vocab).is_file() and (path / merges).is_file():
                return gpt2.load_gpt2(path / vocab, path / merges)
        found = sorted(path.glob("*.tiktoken")) + sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return _load(found[0], pattern)
        raise LmforgeError(
            f"no tokenizer in directory {str(path)!r} (expected {NATIVE_FILENAME}, {HF_FILENAME}, "
            "encoder.json + vocab.bpe, vocab.json + merges.txt, or one .tiktoken/.gguf file)"
        )
    suffix = path.suffix.lower()
    if suffix == ".tiktoken":
        return tiktoken_file.load_tiktoken(path, pattern=pattern)
    if suffix == ".gguf" or _starts_with(path, b"GGUF"):
        from lmforge.tokenizer.gguf import read_gguf_tokenizer

        return read_gguf_tokenizer(path)
    if suffix == ".json":
        data = hf._read_json(path)
        if data.get("format") == NATIVE_FORMAT:
            return native_format.from_dict(data, str(path))
        if "model" in data:
            config_path = path.parent / HF_CONFIG_FILENAME
            config = hf._read_json(config_path) if config_path.is_file() else None
            return hf.from_hf_dict(data, str(path), config)
        raise LmforgeError(
            f"corrupt tokenizer file {str(path)!r}: neither lmforge nor HF tokenizer JSON"
        )
    raise LmforgeError(
        f"unknown tokenizer file type: {str(path)!r} (expected .json, .tiktoken or .gguf)"
    )


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError as exc:
        raise LmforgeError(f"cannot read tokenizer file {str(path)!r}: {exc.strerror}") from None


__all__ = ["gpt2", "hf", "load_tokenizer", "native_format", "save_tokenizer", "tiktoken_file"]
