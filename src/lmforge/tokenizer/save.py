"""Writing a tokenizer directory: `tokenizer.json` + `tokenizer_config.json` (HF) and
`lmforge_tokenizer.json` (lmforge's own file), and the names of those files.

The readers are in `formats/`; they import the Tokenizer to build one. Writing only reads a
tokenizer's attributes, so this module imports no Tokenizer, and `Tokenizer.save` can call it
without an import circle.

HF files use a BPE model with our merge list, a `Split` pre-tokenizer with our regex followed
by a regex-free `ByteLevel` (bytes -> printable characters), and a ByteLevel decoder; special
tokens are `added_tokens`. `tokenizers.Tokenizer.from_file` loads them with identical ids.
`tokenizer_config.json` beside it carries bos/eos and the chat template, as on the Hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import token_to_str
from lmforge.tokenizer.patterns import onig_pattern

# A lmforge.tokenizer.Tokenizer, not imported: the Tokenizer's own `save` imports this module.
TokenizerLike = Any

HF_FILENAME = "tokenizer.json"
HF_CONFIG_FILENAME = "tokenizer_config.json"
NATIVE_FILENAME = "lmforge_tokenizer.json"
NATIVE_FORMAT = "lmforge-bpe"
NATIVE_VERSION = 1

_NEVER = 1 << 62  # rank of a pair that never merges


def save_tokenizer(tok: TokenizerLike, directory: str | Path, *, native: bool = True) -> Path:
    """Write `tokenizer.json` + `tokenizer_config.json` (HF) and, with native=True,
    `lmforge_tokenizer.json` into `directory` (created if needed)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        save_hf(tok, directory)
        if native:
            save_native(tok, directory / NATIVE_FILENAME)
    except OSError as exc:
        raise LmforgeError(
            f"cannot write tokenizer to {str(directory)!r}: {exc.strerror}"
        ) from None
    return directory


# ---------------------------------------------------------------------- HF tokenizer.json


def recover_merges(tok: TokenizerLike) -> list[tuple[bytes, bytes]]:
    """A merge list equivalent to a rank table (tiktoken vocabularies have none).

    Each multi-byte token is split the way BPE would build it using only lower ranks; the last
    merge of that process is the token's merge (what HF's tiktoken converter does).
    """
    ranks = tok._encoder
    merges: list[tuple[int, bytes, bytes]] = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]

        def pair_rank(a: bytes, b: bytes, limit: int = rank) -> int:
            r = ranks.get(a + b, _NEVER)
            return r if r < limit else _NEVER

        pair_ranks = [pair_rank(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
        while len(parts) > 2:
            best = min(pair_ranks)
            if best == _NEVER:
                break
            i = pair_ranks.index(best)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            del pair_ranks[i]
            if i > 0:
                pair_ranks[i - 1] = pair_rank(parts[i - 1], parts[i])
            if i < len(pair_ranks):
                pair_ranks[i] = pair_rank(parts[i], parts[i + 1])
        if len(parts) == 2:
            merges.append((rank, parts[0], parts[1]))
    merges.sort()
    return [(a, b) for _, a, b in merges]


def to_hf_dict(tok: TokenizerLike) -> dict[str, Any]:
    merges = tok.merges if tok.merges is not None else recover_merges(tok)
    # Special tokens are in the model's vocab too: HF takes an added token's id from there
    # and would otherwise give it the next free id.
    vocab: dict[str, int] = {s: i for s, i in tok.special_tokens.items()}
    for i, t in sorted(tok.vocab.items()):
        vocab.setdefault(token_to_str(t), i)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": s,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": onig_pattern(tok.pattern)},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": None,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            # tiktoken semantics look a whole piece up first: HF's ignore_merges.
            "ignore_merges": tok.ignore_merges,
            "vocab": vocab,
            "merges": [[token_to_str(a), token_to_str(b)] for a, b in merges],
        },
    }


def config_dict(tok: TokenizerLike) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }
    for key, tid in (("bos_token", tok.bos_id), ("eos_token", tok.eos_id)):
        if tid is not None:
            cfg[key] = (
                tok.id_to_token(tid) if tid in tok.special_tokens.values() else tok.decode([tid])
            )
    if tok.chat_template is not None:
        cfg["chat_template"] = tok.chat_template
    return cfg


def save_hf(tok: TokenizerLike, directory: Path) -> None:
    (directory / HF_FILENAME).write_text(json.dumps(to_hf_dict(tok), ensure_ascii=False), "utf-8")
    (directory / HF_CONFIG_FILENAME).write_text(
        json.dumps(config_dict(tok), ensure_ascii=False, indent=2) + "\n", "utf-8"
    )


# ---------------------------------------------------------------------- lmforge_tokenizer.json


def native_dict(tok: TokenizerLike) -> dict[str, Any]:
    return {
        "format": NATIVE_FORMAT,
        "version": NATIVE_VERSION,
        "name": tok.name,
        "pattern_name": tok.pattern_name,
        "pattern": tok.pattern,
        "ignore_merges": tok.ignore_merges and tok.merges is not None,
        "special_tokens": tok.special_tokens,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "chat_template": tok.chat_template,
        "vocab": [[i, token_to_str(t)] for i, t in sorted(tok.vocab.items())],
        "merges": None
        if tok.merges is None
        else [f"{token_to_str(a)} {token_to_str(b)}" for a, b in tok.merges],
    }


def save_native(tok: TokenizerLike, path: Path) -> None:
    path.write_text(json.dumps(native_dict(tok), ensure_ascii=False, indent=0) + "\n", "utf-8")
