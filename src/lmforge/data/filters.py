"""Text normalisation and document quality filters in the style of the Gopher rules.

Gopher (Rae et al., 2021, appendix A) keeps a document only if it has 50-100,000 words, a mean
word length of 3-10 characters, a symbol-to-word ratio below 0.1, at most 90% of lines starting
with a bullet, at most 30% of lines ending with an ellipsis, at least 80% of words containing a
letter, and little repetition (duplicate lines and paragraphs, top n-grams, duplicated n-grams).
`QualityFilter` implements these rules with every threshold configurable; `check` returns the
name of the first rule a document fails, so the prepare summary can count each rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

NORMALIZATION_FORMS = ("NFC", "NFKC", "NFD", "NFKD", "none")

_WORD_RE = re.compile(r"\S+")
_ALPHA_RE = re.compile(r"[^\W\d_]")  # any letter, in any script
_BULLETS = ("•", "*", "-", "‣", "◦", "⁃", "●", "▪")


def normalize_text(text: str, form: str = "NFC") -> str:
    """Unicode normalisation plus newline unification (\\r\\n and \\r become \\n)."""
    if form != "none":
        text = unicodedata.normalize(form, text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@dataclass
class FilterConfig:
    """Thresholds of the quality rules; set a value to None to switch that rule off."""

    min_chars: int | None = 1
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1  # '#' and '...' per word
    max_bullet_lines: float | None = 0.9
    max_ellipsis_lines: float | None = 0.3
    min_alpha_words: float | None = 0.8
    max_dup_line_fraction: float | None = 0.3  # duplicate lines / lines
    max_dup_line_char_fraction: float | None = 0.2  # chars in duplicate lines / chars
    max_dup_para_fraction: float | None = 0.3
    max_dup_para_char_fraction: float | None = 0.2
    # Fraction of characters covered by the most frequent n-gram (n -> limit).
    max_top_ngram_char_fraction: dict[int, float] = field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    # Fraction of characters in n-grams that occur more than once (n -> limit).
    max_dup_ngram_char_fraction: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    @classmethod
    def disabled(cls) -> FilterConfig:
        """Only drop empty documents (what a char-level recipe on one text file wants)."""
        return cls(
            min_words=None,
            max_words=None,
            min_mean_word_length=None,
            max_mean_word_length=None,
            max_symbol_word_ratio=None,
            max_bullet_lines=None,
            max_ellipsis_lines=None,
            min_alpha_words=None,
            max_dup_line_fraction=None,
            max_dup_line_char_fraction=None,
            max_dup_para_fraction=None,
            max_dup_para_char_fraction=None,
            max_top_ngram_char_fraction={},
            max_dup_ngram_char_fraction={},
        )


class QualityFilter:
    """`check(text)` -> None to keep the document, else the name of the failed rule."""

    def __init__(self, config: FilterConfig | None = None) -> None:
        self.config = config or FilterConfig()

    def __call__(self, text: str) -> str | None:
        return self.check(text)

    def check(self, text: str) -> str | None:
        c = self.config
        if not text.strip() or (c.min_chars is not None and len(text) < c.min_chars):
            return "empty" if not text.strip() else "too_short"
        words = _WORD_RE.findall(text)
        n_words = len(words)
        if c.min_words is not None and n_words < c.min_words:
            return "too_few_words"
        if c.max_words is not None and n_words > c.max_words:
            return "too_many_words"
        mean_len = sum(len(w) for w in words) / max(n_words, 1)
        if c.min_mean_word_length is not None and mean_len < c.min_mean_word_length:
            return "mean_word_length"
        if c.max_mean_word_length is not None and mean_len > c.max_mean_word_length:
            return "mean_word_length"
        if c.max_symbol_word_ratio is not None and n_words:
            symbols = text.count("#") + text.count("...") + text.count("…")
            if symbols / n_words > c.max_symbol_word_ratio:
                return "symbol_ratio"
        lines = [ln.strip() for ln in text.split("\n")]
        lines = [ln for ln in lines if ln]
        if lines:
            if c.max_bullet_lines is not None:
                bullets = sum(ln.startswith(_BULLETS) for ln in lines)
                if bullets / len(lines) > c.max_bullet_lines:
                    return "bullet_lines"
            if c.max_ellipsis_lines is not None:
                ellipsis = sum(ln.endswith(("...", "…")) for ln in lines)
                if ellipsis / len(lines) > c.max_ellipsis_lines:
                    return "ellipsis_lines"
        if c.min_alpha_words is not None and n_words:
            alpha = sum(1 for w in words if _ALPHA_RE.search(w))
            if alpha / n_words < c.min_alpha_words:
                return "alpha_words"
        reason = _repetition(lines, c.max_dup_line_fraction, c.max_dup_line_char_fraction, "line")
        if reason:
            return reason
        paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        reason = _repetition(paras, c.max_dup_para_fraction, c.max_dup_para_char_fraction, "para")
        if reason:
            return reason
        lowered = [w.lower() for w in words]
        for n, limit in sorted(c.max_top_ngram_char_fraction.items()):
            if _top_ngram_char_fraction(lowered, n) > limit:
                return f"top_{n}gram"
        for n, limit in sorted(c.max_dup_ngram_char_fraction.items()):
            if _dup_ngram_char_fraction(lowered, n) > limit:
                return f"dup_{n}gram"
        return None


def _repetition(items: list[str], max_frac: float | None, max_char_frac: float | None, kind: str):
    if not items or (max_frac is None and max_char_frac is None):
        return None
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for it in items:
        if it in seen:
            dup_items += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    if max_frac is not None and dup_items / len(items) > max_frac:
        return f"dup_{kind}s"
    total = sum(len(it) for it in items)
    if max_char_frac is not None and total and dup_chars / total > max_char_frac:
        return f"dup_{kind}_chars"
    return None


def _top_ngram_char_fraction(words: list[str], n: int) -> float:
    if len(words) < n:
        return 0.0
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0.0
    total = sum(len(w) for w in words)
    return count * sum(len(w) for w in gram) / max(total, 1)


def _dup_ngram_char_fraction(words: list[str], n: int) -> float:
    """Characters of words covered by an n-gram that occurs more than once (no double counting)."""
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            for j in range(i, i + n):
                covered[j] = True
    total = sum(len(w) for w in words)
    dup = sum(len(w) for w, cov in zip(words, covered, strict=True) if cov)
    return dup / max(total, 1)
