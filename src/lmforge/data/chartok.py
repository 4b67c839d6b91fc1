"""Character-level tokenizer: one id per character of a fixed alphabet (the nanoGPT Shakespeare
recipe). Ids follow the sorted alphabet; an optional end-of-text token comes last.

It offers the parts of the `lmforge.tokenizer.Tokenizer` interface that training and generation
use (encode, decode, decode_bytes, vocab_size, eos_id, special_tokens), with a vectorised encoder
for data preparation, and saves as an equivalent lmforge Tokenizer (see `to_tokenizer`), so a
char-level model directory loads with `load_model` / `lmforge generate` like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError

EOS_TOKEN = "<|endoftext|>"


class CharTokenizer:
    def __init__(self, chars: list[str], eos: bool = False) -> None:
        self.chars = list(chars)
        self._stoi = {c: i for i, c in enumerate(self.chars)}
        self.special_tokens: dict[str, int] = {EOS_TOKEN: len(self.chars)} if eos else {}
        self.eos_id: int | None = len(self.chars) if eos else None
        self.bos_id: int | None = None
        self.chat_template: str | None = None
        # Sorted code points for vectorised encoding (np.searchsorted).
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.special_tokens)

    @classmethod
    def from_text(cls, text: str, eos: bool = False) -> CharTokenizer:
        return cls(sorted(set(text)), eos=eos)

    def encode(self, text: str, allowed_special: object = "none") -> list[int]:
        return self.encode_array(text).tolist()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def encode_array(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, cps)
        bad = (ids >= len(self._codes)) | (
            self._codes[np.minimum(ids, len(self._codes) - 1)] != cps
        )
        if bad.any():
            ch = chr(int(cps[np.argmax(bad)]))
            raise LmforgeError(f"character {ch!r} is not in the character vocabulary")
        return ids.astype(np.int64)

    def decode(self, ids: list[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if 0 <= i < len(self.chars):
                out.append(self.chars[i])
            elif i == self.eos_id:
                out.append(EOS_TOKEN)
            else:
                out.append("\ufffd")
        return "".join(out)

    def decode_bytes(self, ids: list[int]) -> bytes:
        return self.decode(ids).encode("utf-8")

    def token_to_id(self, s: str) -> int | None:
        return self._stoi.get(s, self.special_tokens.get(s))

    def id_to_token(self, i: int) -> str:
        return self.decode([i])

    # --- persistence -------------------------------------------------------------------
    def to_tokenizer(self):
        """The same mapping as an `lmforge.tokenizer.Tokenizer`, so a char-level model directory
        loads with `load_model` / `lmforge generate` and exports like any other.

        An ASCII alphabet is a byte-level BPE with no merges (every piece falls apart into
        single bytes = characters): HF `tokenizers`, `transformers` and GGUF all express that.
        Other alphabets use whole-character tokens (rank semantics, one-character pieces),
        which lmforge reads back but HF and GGUF cannot (they would need the characters'
        bytes in the vocabulary)."""
        from lmforge.tokenizer import Tokenizer

        vocab = {i: c.encode("utf-8") for i, c in enumerate(self.chars)}
        if all(ord(c) < 128 for c in self.chars):
            return Tokenizer(vocab, merges=[], special_tokens=self.special_tokens, pattern="gpt2",
                             eos_id=self.eos_id, name="char")  # fmt: skip
        return Tokenizer(vocab, merges=None, special_tokens=self.special_tokens, pattern=r"[\s\S]",
                         eos_id=self.eos_id, name="char")  # fmt: skip

    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer files of `to_tokenizer()` plus `chars.json` into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.to_tokenizer().save(str(d))
        (d / "chars.json").write_text(
            json.dumps({"chars": self.chars, "eos": self.eos_id is not None}, ensure_ascii=False)
        )
        return d

    @classmethod
    def load(cls, directory: str | Path) -> CharTokenizer:
        path = Path(directory) / "chars.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return cls(meta["chars"], eos=bool(meta["eos"]))
        except (OSError, ValueError, KeyError) as exc:
            raise LmforgeError(f"cannot read character vocabulary {path}: {exc}") from exc
