"""Lexical helpers shared by the stores and the answerer: one tokenization, one stopword list.

`query_terms` is what lexical search sees of a query; `content_words` and `stem` are what the
answerer compares when it checks a sentence against its source. Keeping them together means a
word that search ignores is also ignored by the checks.
"""

from __future__ import annotations

import re

# Words too common to help lexical search (a short English list, as in most BM25 setups).
# fmt: off
STOPWORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "me", "more", "most", "my", "myself", "no", "nor", "not", "of", "off", "on", "once", "only",
    "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so",
    "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why",
    "will", "with", "would", "you", "your", "yours", "yourself", "yourselves",
])
# fmt: on

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens, in order."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords, in order, repeats kept."""
    return [w for w in words(text) if w not in STOPWORDS]


def query_terms(text: str) -> list[str]:
    """The terms lexical search looks for: content words, order kept, duplicates removed."""
    return list(dict.fromkeys(content_words(text)))


def stem(word: str) -> str:
    """A light suffix strip, enough to match "defended"/"defends"/"defense"-style variants."""
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
