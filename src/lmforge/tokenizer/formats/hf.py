"""Reading HF `tokenizer.json` (the `tokenizers` library's format) and the
`tokenizer_config.json` beside it; writing them is `lmforge.tokenizer.save`.

Reading accepts byte-level BPE files whose pre-tokenizer is one we can express: ByteLevel with
its GPT-2 regex, Split(regex) + ByteLevel, or Digits(individual) + ByteLevel (SmolLM2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.tokenizer.byte_unicode import str_to_token
from lmforge.tokenizer.core import Tokenizer
from lmforge.tokenizer.patterns import PATTERNS, onig_pattern


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
