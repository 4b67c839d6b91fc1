"""The Tokenizer: byte-level BPE vocabulary, special tokens, encode and decode.

A tokenizer is a regex pre-tokenizer (text -> pieces), a vocabulary (token bytes <-> id), the
merge priorities, and special tokens that are matched in the text before anything else and never
split or merged across.

Two merge semantics exist in the wild, and both are supported exactly:

* merge list (GPT-2 vocab.bpe, HF tokenizer.json, GGUF, our trainer): inside a piece, repeatedly
  merge the adjacent pair that comes first in the merge list (leftmost on ties);
* rank table (tiktoken files, ``merges is None``): merge the adjacent pair whose concatenation
  has the lowest id; a piece that is itself a token is looked up whole first.

Two encoders give identical ids: a pure-Python reference (`backend="python"`, with a piece
cache) and a fast one built on tiktoken's Rust core (`backend="fast"`) from our own ranks.
For merge-list vocabularies the fast backend gets a rank table that reproduces merge-list
semantics exactly (see `_build_fast`); where that is impossible it falls back to Python.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, Literal

import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token, token_to_str
from lmforge.tokenizer.patterns import resolve_pattern
from lmforge.tokenizer.reachable import unreachable_tokens

AllowedSpecial = Literal["all", "none", "none_raise"] | set[str] | frozenset[str]

_INF = 1 << 62  # rank of a pair that never merges
_CACHE_LIMIT = 1 << 18  # pieces kept in the pure-Python encoder's cache


class Tokenizer:
    """A byte-level BPE tokenizer.

    Args:
        vocab: id -> token bytes for every ordinary (non-special) token.
        merges: merge list in priority order, as pairs of token bytes; None means tiktoken rank
            semantics (the id of a token is its merge priority).
        special_tokens: special token string -> id.
        pattern: pre-tokenizer name (see `patterns.PATTERNS`) or a custom regex.
        ignore_merges: Llama-3 style: a piece that is a whole token is emitted as that token
            before any merging (always the case with rank semantics, as in tiktoken).
        backend: "fast" (tiktoken core, identical ids) or "python" (reference).
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        *,
        merges: Sequence[tuple[bytes, bytes]] | None = None,
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = "gpt2",
        ignore_merges: bool = False,
        bos_id: int | None = None,
        eos_id: int | None = None,
        chat_template: str | None = None,
        name: str = "lmforge",
        backend: Literal["fast", "python"] = "fast",
    ) -> None:
        self.pattern, self.pattern_name = resolve_pattern(pattern)
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges: list[tuple[bytes, bytes]] | None = list(merges) if merges is not None else None
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.ignore_merges = ignore_merges or merges is None
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.chat_template = chat_template
        self.name = name
        if backend not in ("fast", "python"):
            raise LmforgeError(f"unknown tokenizer backend {backend!r} (use 'fast' or 'python')")
        self.backend = backend

        self._encoder: dict[bytes, int] = {tok: i for i, tok in self.vocab.items()}
        if len(self._encoder) != len(self.vocab):
            # A vocabulary may hold the same bytes twice (HF keeps both); the lower id wins, as
            # the merge that first created it is the one BPE applies.
            for i, tok in self.vocab.items():
                if i < self._encoder[tok]:
                    self._encoder[tok] = i
        clash = [i for i in self.special_tokens.values() if i in self.vocab]
        if clash:
            raise LmforgeError(f"special token ids {sorted(clash)[:5]} are also ordinary token ids")
        self._decoder: dict[int, bytes] = dict(self.vocab)
        for s, i in self.special_tokens.items():
            self._decoder[i] = s.encode("utf-8")
        self._inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._size = max(self._decoder, default=-1) + 1

        if self.merges is not None:
            self._merge_ranks: dict[tuple[bytes, bytes], int] | None = {}
            for rank, pair in enumerate(self.merges):
                self._merge_ranks.setdefault(pair, rank)
        else:
            self._merge_ranks = None
        # Bytes without a token (some HF/GGUF vocabularies lack rare control bytes): HF drops
        # them before merging, and so do we. Texts holding one bypass the fast backend.
        self._missing_bytes = bytes(b for b in range(256) if bytes([b]) not in self._encoder)
        self._cache: dict[str, list[int]] = {}
        self._fast: Any = None  # tiktoken.Encoding, built on first use
        self._fast_table: list[int] | None = None  # tiktoken rank -> our id, when they differ
        self._fast_failed: str | None = None
        # The encoding `encode_lines` uses (newline as a special token), built on first use.
        self._fast_lines: tuple[Any, list[int] | None] | None = None
        self._fast_ranks: tuple[dict[bytes, int], list[int] | None] | None = None

    @functools.cached_property
    def _pat(self) -> regex.Pattern:
        """The pre-tokenizer, compiled when the pure-Python encoder first needs it."""
        return regex.compile(self.pattern)

    # ---------------------------------------------------------------- basic facts

    @property
    def vocab_size(self) -> int:
        """Number of ids (largest id + 1), special tokens included."""
        return self._size

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        pat = self.pattern_name or "custom"
        return (
            f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, pattern={pat!r}, "
            f"special_tokens={len(self.special_tokens)})"
        )

    def token_to_id(self, token: str | bytes) -> int | None:
        """Id of a special token string, of raw token bytes, or of a GPT-2 style token string
        ("Ġthe"), in that order; None if unknown."""
        if isinstance(token, bytes):
            return self._encoder.get(token)
        if token in self.special_tokens:
            return self.special_tokens[token]
        try:
            return self._encoder.get(str_to_token(token))
        except KeyError:
            return None

    def id_to_token(self, token_id: int) -> str | None:
        """Special token string or GPT-2 style token string ("Ġthe") of an id; None if unknown."""
        if token_id in self._inverse_special:
            return self._inverse_special[token_id]
        tok = self.vocab.get(token_id)
        return None if tok is None else token_to_str(tok)

    def id_to_bytes(self, token_id: int) -> bytes:
        try:
            return self._decoder[token_id]
        except (KeyError, TypeError):
            raise LmforgeError(f"token id {token_id!r} is not in the vocabulary") from None

    # ---------------------------------------------------------------- decoding

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenated token bytes (special tokens as their UTF-8 text)."""
        dec = self._decoder
        ids = ids if isinstance(ids, list) else list(ids)
        try:
            return b"".join([dec[i] for i in ids])
        except (KeyError, TypeError):
            bad = next(i for i in ids if i not in dec)
            raise LmforgeError(f"token id {bad!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; bytes that are not valid UTF-8 become U+FFFD (never raises)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- encoding

    def encode(
        self,
        text: str,
        allowed_special: AllowedSpecial = "none_raise",
        *,
        backend: Literal["fast", "python"] | None = None,
    ) -> list[int]:
        """Token ids of `text`.

        allowed_special: "all" (every special token string in the text becomes its id), "none"
        (special token strings are encoded as ordinary text), "none_raise" (the default: an
        error if the text contains one) or a set of special token strings to recognise (others
        are ordinary text).
        """
        fast_ready = self._fast is not None and not self._missing_bytes
        if allowed_special == "none" and backend is None and self.backend == "fast" and fast_ready:
            return self._encode_fast(text, set())  # the common case, with the least overhead
        specials = self._allowed_specials(text, allowed_special)
        if (
            (backend or self.backend) == "fast"
            and self._fast_encoding() is not None
            and not self._has_missing_bytes(text)
        ):
            return self._encode_fast(text, specials)
        return self._encode_python(text, specials)

    def _has_missing_bytes(self, text: str) -> bool:
        if not self._missing_bytes:
            return False
        raw = _without_surrogates(text).encode("utf-8")
        return len(raw.translate(None, self._missing_bytes)) != len(raw)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, with special token strings treated as ordinary text."""
        return self.encode(text, "none")

    def encode_batch(
        self,
        texts: Sequence[str],
        allowed_special: AllowedSpecial = "none_raise",
        *,
        backend: Literal["fast", "python"] | None = None,
    ) -> list[list[int]]:
        """Token ids of each text (the fast backend encodes on several threads)."""
        use_fast = (backend or self.backend) == "fast" and self._fast_encoding() is not None
        if not use_fast or any(self._has_missing_bytes(t) for t in texts):
            # one at a time: each text takes the fast path when it can
            return [self.encode(t, allowed_special, backend=backend) for t in texts]
        enc = self._fast
        for t in texts:
            self._allowed_specials(t, allowed_special)  # raises on forbidden specials
        if allowed_special in ("none", "none_raise"):
            out = enc.encode_ordinary_batch(list(texts))
        else:
            allowed = self._as_set(allowed_special)
            out = enc.encode_batch(list(texts), allowed_special=allowed, disallowed_special=())
        if self._fast_table is not None:
            table = self._fast_table
            out = [[table[r] for r in ids] for ids in out]
        return out

    def encode_lines(
        self, text: str, allowed_special: AllowedSpecial = "none_raise"
    ) -> list[list[int]]:
        """Token ids of each line of `text`: `[self.encode(line, allowed_special) for line in
        text.split("\n")]`, with the newline itself not encoded (see `encode_lines_flat`)."""
        ids = self.encode_lines_flat(text, allowed_special)
        newline = self.vocab_size
        lines: list[list[int]] = []
        start = 0
        index = ids.index
        while True:
            try:
                end = index(newline, start)
            except ValueError:
                lines.append(ids[start:])
                return lines
            lines.append(ids[start:end])
            start = end + 1

    def encode_lines_flat(
        self, text: str, allowed_special: AllowedSpecial = "none_raise"
    ) -> list[int]:
        """The ids of `encode_lines` in one list, the lines separated by the id `vocab_size`
        (one past the largest id, so no token): the cheapest form to write out.

        The fast backend takes all lines in one call: its second encoding knows the newline
        as a special token, and tiktoken encodes the text between two special tokens on its
        own, exactly as if each line were encoded alone. One call instead of one per line
        keeps Python (and a thread pool) out of the inner loop.
        """
        specials = self._allowed_specials(text, allowed_special)
        if (
            self.backend != "fast"
            or self._has_missing_bytes(text)
            or self._lines_encoding() is None
        ):
            out: list[int] = []
            for i, line in enumerate(text.split("\n")):
                if i:
                    out.append(self.vocab_size)
                out += self._encode_python(line, specials)
            return out
        enc, table = self._fast_lines
        # A special token containing a newline never lies inside one line.
        allowed = {s for s in specials if "\n" not in s}
        allowed.add("\n")
        ids = enc.encode(text, allowed_special=allowed, disallowed_special=())
        if table is not None:
            ids = [table[r] for r in ids]
        return ids

    def _as_set(self, allowed_special: AllowedSpecial) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special in ("none", "none_raise"):
            return set()
        if isinstance(allowed_special, (set, frozenset)):
            return {s for s in allowed_special if s in self.special_tokens}
        raise LmforgeError(
            f"allowed_special must be 'all', 'none', 'none_raise' or a set, not {allowed_special!r}"
        )

    def _allowed_specials(self, text: str, allowed_special: AllowedSpecial) -> set[str]:
        allowed = self._as_set(allowed_special)
        if allowed_special == "none_raise" and self.special_tokens:
            found = [s for s in self.special_tokens if s in text]
            if found:
                raise LmforgeError(
                    f"text contains special token {found[0]!r}; pass allowed_special='all' to "
                    "encode it as a special token or 'none' to encode it as ordinary text"
                )
        return allowed

    # --- pure-Python reference

    def _encode_python(self, text: str, specials: set[str]) -> list[int]:
        text = _without_surrogates(text)
        if not specials:
            return self._encode_chunk(text)
        # Longest first, so a special token that contains another one wins.
        alternation = "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True))
        out: list[int] = []
        pos = 0
        for m in regex.finditer(alternation, text):
            out.extend(self._encode_chunk(text[pos : m.start()]))
            out.append(self.special_tokens[m.group()])
            pos = m.end()
        out.extend(self._encode_chunk(text[pos:]))
        return out

    def _encode_chunk(self, text: str) -> list[int]:
        cache = self._cache
        out: list[int] = []
        for piece in self._pat.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._bpe(piece.encode("utf-8"))
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[piece] = ids
            out += ids
        return out

    def _bpe(self, piece: bytes) -> list[int]:
        """Token ids of one pre-tokenized piece, by the merge rules of this vocabulary."""
        encoder = self._encoder
        if self.ignore_merges:
            whole = encoder.get(piece)
            if whole is not None:
                return [whole]
        if self._missing_bytes:
            piece = piece.translate(None, self._missing_bytes)
        return [encoder[p] for p in self._merge(piece)]

    def _merge(self, piece: bytes) -> list[bytes]:
        """Split a piece into bytes and apply merges, best pair first (leftmost on ties)."""
        parts = [piece[i : i + 1] for i in range(len(piece))]
        if len(parts) < 2:
            return parts
        # The two semantics differ only in how a pair is ranked; bind the lookup once.
        if self._merge_ranks is not None:
            get = self._merge_ranks.get
            ranks = [get(pair, _INF) for pair in pairwise(parts)]
        else:
            lookup = self._encoder.get
            ranks = [lookup(a + b, _INF) for a, b in pairwise(parts)]
        while ranks:
            best = min(ranks)
            if best == _INF:
                break
            i = ranks.index(best)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            del ranks[i]
            # Only the pairs touching the merged part changed.
            if self._merge_ranks is not None:
                if i > 0:
                    ranks[i - 1] = get((parts[i - 1], parts[i]), _INF)
                if i < len(ranks):
                    ranks[i] = get((parts[i], parts[i + 1]), _INF)
            else:
                if i > 0:
                    ranks[i - 1] = lookup(parts[i - 1] + parts[i], _INF)
                if i < len(ranks):
                    ranks[i] = lookup(parts[i] + parts[i + 1], _INF)
        return parts

    # --- fast backend (tiktoken's Rust core, from our ranks)

    def _encode_fast(self, text: str, specials: set[str]) -> list[int]:
        enc = self._fast
        if specials:
            ids = enc.encode(text, allowed_special=specials, disallowed_special=())
        else:
            ids = enc.encode_ordinary(text)
        if self._fast_table is not None:
            table = self._fast_table
            ids = [table[r] for r in ids]
        return ids

    def _fast_encoding(self) -> Any:
        if self._fast is None and self._fast_failed is None:
            try:
                self._build_fast()
            except _NoFastBackend as exc:
                self._fast_unavailable(exc)
        return self._fast

    def _lines_encoding(self) -> Any:
        if self._fast_lines is None and self._fast_failed is None:
            try:
                self._fast_lines = self._make_fast(line_separator=True)
            except _NoFastBackend as exc:
                self._fast_unavailable(exc)
        return self._fast_lines

    def _fast_unavailable(self, exc: Exception) -> None:
        self._fast_failed = str(exc)
        warnings.warn(
            f"tokenizer {self.name!r}: fast backend unavailable ({exc}); "
            "using the pure-Python encoder",
            stacklevel=4,
        )

    def _build_fast(self) -> None:
        self._fast, self._fast_table = self._make_fast()

    def _make_fast(self, *, line_separator: bool = False) -> tuple[Any, list[int] | None]:
        """A tiktoken Encoding whose output equals this tokenizer's ids and its rank -> id table
        (None when ranks are ids). With line_separator, the newline is a special token whose
        id is `vocab_size` (see `encode_lines_flat`).

        tiktoken merges the adjacent pair whose concatenation has the lowest rank, and looks a
        whole piece up first. With rank semantics (tiktoken files) our ids are those ranks. For a
        merge list we give every token the rank of the merge that creates it: then "lowest rank
        of the concatenation" is "first merge in the list". Tokens that BPE can never produce
        from their own bytes are left out, since tiktoken would find them by whole-piece lookup
        (BPE inside a piece never produces them anywhere else either). When ids follow merge
        order (our trainer, HF, GGUF) the ranks are the ids and no translation is needed.
        """
        import tiktoken

        if self._merge_ranks is None:
            ranks, table = self._encoder, None  # ids are ranks (tiktoken only reads the dict)
        else:
            if self._fast_ranks is None:  # costly (BPE of every token): shared by both encodings
                self._fast_ranks = self._merge_list_ranks()
            ranks, table = self._fast_ranks
            table = None if table is None else list(table)
        specials = {
            s: i for s, i in self.special_tokens.items() if not (line_separator and "\n" in s)
        }
        if table is not None:
            # tiktoken returns ranks; specials get ranks past the ordinary ones.
            next_rank = max(ranks.values()) + 1
            for s, i in list(specials.items()):
                table.extend([0] * (next_rank + 1 - len(table)))
                table[next_rank] = i
                specials[s] = next_rank
                next_rank += 1
        if line_separator:
            if table is None:
                rank = self.vocab_size  # ranks are ids, all below it
            else:
                rank = len(table)  # the next free rank, which the table maps to vocab_size
                table.append(self.vocab_size)
            specials["\n"] = rank
        enc = tiktoken.Encoding(
            f"lmforge-{self.name}-{id(self)}{'-lines' if line_separator else ''}",
            pat_str=self.pattern,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )
        return enc, table

    def _merge_list_ranks(self) -> tuple[dict[bytes, int], list[int] | None]:
        assert self.merges is not None
        created: dict[bytes, int] = {}  # token -> rank of the merge that creates it
        for rank, (a, b) in enumerate(self.merges):
            tok = a + b
            if tok in created:
                raise _NoFastBackend(f"token {tok!r} is created by two merges")
            created[tok] = rank
        unreachable = unreachable_tokens(self.merges, self._merge)
        if self.ignore_merges and any(t in self._encoder for t in unreachable):
            raise _NoFastBackend("ignore_merges with tokens BPE cannot reach")
        # a merge whose result is not in the vocabulary never applies usefully
        reachable = {
            tok: rank
            for tok, rank in created.items()
            if tok in self._encoder and tok not in unreachable
        }
        if self.ignore_merges:
            extra = [t for t in self._encoder if len(t) > 1 and t not in created]
            if extra:
                raise _NoFastBackend("ignore_merges with tokens no merge creates")

        ordered = sorted(reachable, key=reachable.__getitem__)
        ids = [self._encoder[t] for t in ordered]
        present = [b for b in range(256) if bytes([b]) in self._encoder]
        byte_ids = [self._encoder[bytes([b])] for b in present]
        if all(x < y for x, y in pairwise(ids)) and not set(byte_ids) & set(ids):
            ranks = {bytes([b]): i for b, i in zip(present, byte_ids, strict=True)}
            ranks.update(zip(ordered, ids, strict=True))
            return ranks, None
        ranks = {bytes([b]): r for r, b in enumerate(present)}
        table = list(byte_ids)
        for tok in ordered:
            ranks[tok] = len(table)
            table.append(self._encoder[tok])
        return ranks, table

    # ---------------------------------------------------------------- chat and saving

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = False,
        *,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Render messages with the chat template, as HF's `apply_chat_template(tokenize=False)`."""
        from lmforge.tokenizer.chat import render_chat_template

        template = chat_template or self.chat_template
        if template is None:
            raise LmforgeError(f"tokenizer {self.name!r} has no chat template")
        return render_chat_template(
            template,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self._special_text(self.bos_id),
            eos_token=self._special_text(self.eos_id),
            **kwargs,
        )

    def _special_text(self, token_id: int | None) -> str:
        if token_id is None:
            return ""
        if token_id in self._inverse_special:
            return self._inverse_special[token_id]
        return self.decode([token_id])

    def save(self, directory: str, *, native: bool = True) -> None:
        """Write `tokenizer.json` (HF format) and, with native=True, `lmforge_tokenizer.json`."""
        from lmforge.tokenizer.save import save_tokenizer

        save_tokenizer(self, directory, native=native)


class _NoFastBackend(Exception):
    """The vocabulary cannot be expressed as tiktoken ranks with identical results."""


def _without_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD, as tiktoken does before encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
