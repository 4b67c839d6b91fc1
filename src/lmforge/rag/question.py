"""What a question asks for: its answer type, its subject words, and the identifiers it names.

The reader (`reader.py`) looks for a sentence that holds a value of the asked type about the
question's subject; the answerer refuses when an identifier the question names (a setting, a
function, an option: ``skip_blank_rows``, ``JSON.stringify``, ``PYTHONLOGLEVEL``) occurs nowhere in
the documents, whatever else a passage has in common with the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.rag.text import STOPWORDS, content_words, stem

# Answer types, tried in order; the first whose pattern matches the question wins.
_KINDS: list[tuple[str, re.Pattern]] = [
    (  # by its form, unless it offers alternatives ("a min-heap or a max-heap?")
        "yesno",
        re.compile(
            r"^(is|are|was|were|does|do|did|can|could|will|would|should|has|have|must|may)\b"
            r"(?!.*\bor\b)",
            re.I,
        ),
    ),
    (
        "version",
        re.compile(
            r"\b(since|as of|from|starting (with|in)|in) (which|what) (python )?version\b|"
            r"\bwhich (python )?version\b|\bwhat version\b|\bwhen was .* (added|introduced|deprecated|removed)\b",
            re.I,
        ),
    ),
    (
        "name",
        re.compile(
            r"\b(which|what) (exception|error|function|method|class|module|decorator|helper|"
            r"action|environment variable|argument|parameter|flag|keyword|attribute|constant)s?\b",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            r"^when (was|were|did|is|does|will|do)\b|^(in what|in which) year\b|"
            r"\b(what|which) (year|date|decade|century|month)\b",
            re.I,
        ),
    ),
    (
        "duration",
        re.compile(
            r"\bhow long\b|\bhow many (milli)?(seconds|minutes|hours|days)\b|\bhow soon\b|"
            r"\b(timeout|time-out|time out|interval|delay)\b|\bwait\b",
            re.I,
        ),
    ),
    (
        "default",
        re.compile(
            r"\bdefaults?\b|\bby default\b|\bout of the box\b|\bunless (i|you|we) \w+|"
            r"\bif (i|you|we) (don't|do not|never) (give|pass|specify|set|touch|provide|say)|"
            r"\bwithout (giving|passing|specifying|setting|a |an |any )|\bleave \w+ alone\b|"
            r"\bwith no (arguments?|options?)\b|\bwith only\b",
            re.I,
        ),
    ),
    (
        "quantity",
        re.compile(
            r"\bhow (many|much|big|large|small|long|far|deep|wide|high|fast)\b|"
            r"\b(maximum|minimum|max|min|limit|largest|smallest|latest|earliest|size|number of|"
            r"count|resolution|period|port|percentage|level|code|status)\b",
            re.I,
        ),
    ),
    (
        "name",
        re.compile(
            r"^(which|what)( \w+)?( \w+)? (function|method|class|exception|error|module|option|"
            r"argument|parameter|flag|setting|action|attribute|variable|command|helper|keyword|"
            r"constant|call|decorator|type|protocol|mode)\b|"
            r"\b(which|what) (function|method|class|exception|error|module|option|argument|"
            r"parameter|flag|setting|action|attribute|helper|keyword|constant|decorator)\b|"
            r"\bwhat (should|do|can) (i|we) (use|call|pass)\b|\bwhat('s| is) the name\b|"
            r"\bhow do (i|we) tell\b|\bwhat error\b",
            re.I,
        ),
    ),
    ("definition", re.compile(r"^(what|who|why|how)\b", re.I)),
]

# Words that say what kind of answer is wanted, not what it is about.
TYPE_WORDS = {
    "default", "defaults", "value", "values", "version", "long", "many", "much", "big", "large",
    "name", "called", "use", "used", "using", "set", "setting", "get", "give", "pass", "specify",
    "happen", "happens", "mean", "means", "work", "works", "way", "thing", "kind", "type",
    "number", "amount", "which", "what", "whats", "does", "do", "done", "make", "makes", "need",
    "want", "tell", "know", "python", "option", "argument", "parameter", "function", "method",
}  # fmt: skip

# Identifiers: dotted names, snake_case, camelCase and inner capitals, ALL_CAPS words of six or
# more letters, words with digits, calls; in backticks, anything.
_IDENTIFIER = re.compile(
    r"`([^`]+)`|"
    r"(?<![\w.-])([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+)(?:\(\))?|"
    r"(?<![\w.-])(\w*[A-Za-z]_\w*[A-Za-z0-9]|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*|[A-Z]{6,}|"
    r"[A-Za-z]+\d+[A-Za-z]\w*|\w+(?=\(\)))(?![\w-])"
)
_UNITS = {"KiB", "MiB", "GiB", "TiB", "PiB", "KB", "MB", "GB", "TB"}
_POSSESSIVE = re.compile(r"'s\b")


@dataclass(frozen=True)
class Question:
    """``kind``: version, name, date, duration, default, quantity, yesno, definition or other.
    ``subject``: stemmed content words about the thing asked (type words left out);
    ``identifiers``: names the documents must mention for the question to be answerable."""

    text: str
    kind: str
    subject: tuple[str, ...]
    identifiers: tuple[str, ...]


def analyse(question: str) -> Question:
    """Answer type, subject words and identifiers of a question."""
    text = " ".join(question.split())
    kind = next((name for name, pattern in _KINDS if pattern.search(text)), "other")
    subject = tuple(
        dict.fromkeys(
            stem(w) for w in content_words(_POSSESSIVE.sub("", text)) if w not in TYPE_WORDS
        )
    )
    return Question(text, kind, subject, tuple(identifiers(text)))


def identifiers(text: str) -> list[str]:
    """The identifier-like names in ``text`` that documents would spell the same way, split at
    dots into their parts (``JSON.stringify`` -> ``JSON``, ``stringify``)."""
    found: set[str] = set()
    ordered: list[str] = []
    for match in _IDENTIFIER.finditer(_POSSESSIVE.sub("", text)):
        quoted, dotted, plain = match.groups()
        if quoted is not None:
            parts = [quoted.strip()]
        elif dotted is not None:
            parts = dotted.split(".")
        else:
            parts = [plain]
        for part in parts:
            if len(part) > 1 and part not in found | _UNITS and part.lower() not in STOPWORDS:
                found.add(part)
                ordered.append(part)
    return ordered
