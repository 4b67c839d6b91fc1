"""Named pre-tokenizer regexes.

A byte-level BPE tokenizer first splits text into pieces with a regex, then runs BPE inside each
piece, so merges never cross a piece boundary. The patterns below are the published ones (GPT-2,
cl100k = "gpt4", o200k, Llama 3) in the exact form tiktoken uses, plus SmolLM2's "smollm": every
numeric character is its own piece, and the GPT-2 pattern applies between them.
"""

from __future__ import annotations

import regex

from lmforge.errors import LmforgeError

GPT2 = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

GPT4 = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

O200K = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

LLAMA3 = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# SmolLM2 (HF: Digits(individual_digits=True) then ByteLevel's GPT-2 regex; llama.cpp: "smollm").
# One regex does both: a numeric char is a piece of its own, no other alternative may contain
# one, and trailing whitespace may end where a digit starts (a segment end in the two-step form).
SMOLLM = r"""\p{N}|'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

PATTERNS: dict[str, str] = {
    "gpt2": GPT2,
    "gpt4": GPT4,
    "cl100k": GPT4,
    "o200k": O200K,
    "llama3": LLAMA3,
    "smollm": SMOLLM,
}


def resolve_pattern(name_or_regex: str) -> tuple[str, str | None]:
    """Return (regex, name) for a pattern name or a custom regex (name is None for custom).

    A string that is not a known name is taken as a regex when it contains a regex
    metacharacter; a bare word that is not a known name is an error (most likely a typo).
    """
    if name_or_regex in PATTERNS:
        return PATTERNS[name_or_regex], name_or_regex
    for name, pat in PATTERNS.items():
        if pat == name_or_regex:
            return pat, name
    if regex.fullmatch(r"[A-Za-z0-9_\-]+", name_or_regex):
        known = ", ".join(sorted(PATTERNS))
        raise LmforgeError(f"unknown pattern name {name_or_regex!r} (known: {known})")
    try:
        regex.compile(name_or_regex)
    except regex.error as exc:
        raise LmforgeError(f"invalid pre-tokenizer regex {name_or_regex!r}: {exc}") from None
    return name_or_regex, None


def onig_pattern(pattern: str) -> str:
    """The pattern as HF's regex engine (Oniguruma) reads it the same way.

    Oniguruma takes `x{1,3}+` as "(x{1,3}) one or more times", not as a possessive `{1,3}`
    (cl100k's `\\p{N}{1,3}+` would swallow whole numbers). A possessive bound on a counted
    repeat changes nothing when nothing follows it in its alternative, so drop the `+`.
    """
    return regex.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pattern)
