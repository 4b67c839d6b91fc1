"""HF `tokenizer.json` (the `tokenizers` library's format), read and write.

Written files use a BPE model with our merge list, a `Split` pre-tokenizer with our regex
followed by a regex-free `ByteLevel` (bytes -> printable characters), and a ByteLevel decoder;
special tokens are `added_tokens`. `tokenizers.Tokenizer.from_file` loads them with identical
ids. `tokenizer_config.json` beside it carries bos/eos and the chat template, as on the Hub.

Reading accepts byte-level BPE files whose pre-tokenizer is one we can express: ByteLevel with
its GPT-2 regex, Split(regex) + ByteLevel, or Digits(individual) + ByteLevel (SmolLM2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token, token_to_str
from lmforge.tokenizer.core import _INF, Tokenizer
from lmforge.tokenizer.patterns import PATTERNS

FILENAME = "tokenizer.json"
CONFIG_FILENAME = "tokenizer_config.json"


# ---------------------------------------------------------------------- writing


def recover_merges(tok: Tokenizer) -> list[tuple[bytes, bytes]]:
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
            r = ranks.get(a + b, _INF)
            return r if r < limit else _INF

        pair_ranks = [pair_rank(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
        while len(parts) > 2:
            best = min(pair_ranks)
            if best == _INF:
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


def onig_pattern(pattern: str) -> str:
    """The pattern as HF's regex engine (Oniguruma) reads it the same way.

    Oniguruma takes `x{1,3}+` as "(x{1,3}) one or more times", not as a possessive `{1,3}`
    (cl100k's `\\p{N}{1,3}+` would swallow whole numbers). A possessive bound on a counted
    repeat changes nothing when nothing follows it in its alternative, so drop the `+`.
    """
    return regex.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pattern)


def to_hf_dict(tok: Tokenizer) -> dict[str, Any]:
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


def config_dict(tok: Tokenizer) -> dict[str, Any]:
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


def save_hf(tok: Tokenizer, directory: str | Path) -> None:
    directory = Path(directory)
    (directory / FILENAME).write_text(json.dumps(to_hf_dict(tok), ensure_ascii=False), "utf-8")
    (directory / CONFIG_FILENAME).write_text(
        json.dumps(config_dict(tok), ensure_ascii=False, indent=2) + "\n", "utf-8"
    )


# ---------------------------------------------------------------------- reading


def _pattern_of(pre: dict[str, Any] | None, source: str) -> str:
    """Our pattern for an HF pre-tokenizer, or an error naming what is unsupported."""

    def unsupported(what: str) -> LmforgeError:
        return LmforgeError(f"{source}: unsupported pre-tokenizer ({what})")

    if pre is None:
        raise unsupported("none: not a byte-level BPE tokenizer")
    kind = pre.get("type")
    if kind == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise unsupported("ByteLevel with add_prefix_space")
        if not pre.get("use_regex", True):
            raise unsupported("ByteLevel without regex and nothing before it")
        return "gpt2"
    if kind != "Sequence":
        raise unsupported(str(kind))
    steps = pre.get("pretokenizers") or []
    if len(steps) != 2 or steps[1].get("type") != "ByteLevel" or steps[1].get("add_prefix_space"):
        raise unsupported("a sequence other than [Split or Digits, ByteLevel]")
    first, byte_level = steps
    if (
        first.get("type") == "Digits"
        and first.get("individual_digits")
        and byte_level.get("use_regex", True)
    ):
        return "smollm"
    if first.get("type") == "Split" and not byte_level.get("use_regex", True):
        regex_ = (first.get("pattern") or {}).get("Regex")
        if regex_ is None or first.get("behavior") != "Isolated" or first.get("invert"):
            raise unsupported("Split that is not an isolated regex")
        for name, pat in PATTERNS.items():
            if regex_ in (pat, onig_pattern(pat)):
                return name
        return regex_
    raise unsupported(f"{first.get('type')} + ByteLevel")


def from_hf_dict(
    data: dict[str, Any], source: str, config: dict[str, Any] | None = None
) -> Tokenizer:
    try:
        model = data["model"]
        if model.get("type") != "BPE":
            raise LmforgeError(f"{source}: unsupported model type {model.get('type')!r} (need BPE)")
        if data.get("normalizer") is not None:
            raise LmforgeError(
                f"{source}: unsupported normalizer {data['normalizer'].get('type')!r}"
            )
        pattern = _pattern_of(data.get("pre_tokenizer"), source)
        special_tokens = {t["content"]: int(t["id"]) for t in data.get("added_tokens") or []}
        special_ids = set(special_tokens.values())
        vocab: dict[int, bytes] = {}
        for s, i in model["vocab"].items():
            if int(i) in special_ids:
                continue
            try:
                vocab[int(i)] = str_to_token(s)
            except KeyError:
                raise LmforgeError(
                    f"{source}: token {s!r} is not byte-level (only byte-level BPE is supported)"
                ) from None
        merges = []
        for m in model["merges"]:
            a, b = m.split(" ") if isinstance(m, str) else m
            merges.append((str_to_token(a), str_to_token(b)))
    except LmforgeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LmforgeError(
            f"corrupt tokenizer file {source}: {type(exc).__name__}: {exc}"
        ) from None

    config = config or {}

    def special_id(key: str) -> int | None:
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return special_tokens.get(value) if isinstance(value, str) else None

    template = config.get("chat_template")
    if isinstance(template, list):  # several named templates: HF uses "default"
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return Tokenizer(
        vocab,
        merges=merges,
        special_tokens=special_tokens,
        pattern=pattern,
        ignore_merges=bool(model.get("ignore_merges", False)),
        bos_id=special_id("bos_token"),
        eos_id=special_id("eos_token"),
        chat_template=template,
        name=Path(source).parent.name or "hf",
    )


def load_hf(path: str | Path) -> Tokenizer:
    """Read `tokenizer.json` (and `tokenizer_config.json` beside it, if present)."""
    path = Path(path)
    data = _read_json(path)
    config_path = path.parent / CONFIG_FILENAME
    config = _read_json(config_path) if config_path.is_file() else None
    return from_hf_dict(data, str(path), config)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise LmforgeError(f"cannot read tokenizer file {str(path)!r}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LmforgeError(f"corrupt tokenizer file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise LmforgeError(f"corrupt tokenizer file {str(path)!r}: expected a JSON object")
    return data
