"""The reader: the sentence (or sentence pair) of the retrieved passages that answers a question.

Reference manuals state a fact next to the sentence that names the thing ("...if the database is
locked by another connection. Default five seconds."), so the reader weighs windows of one
sentence and of two neighbouring sentences. A window scores by how close it is to the question
(embedding cosine), how many of the question's subject words it and its section share, and
whether it holds a value of the asked type (a duration for "how long", a version for "since
when", a default for "by default", a name for "which function"); a pair must earn its second
sentence. Sentences are read from the cleaned text (`clean.py`), paragraph by paragraph, so
markup never reaches a quote and a heading never joins the sentence after it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lmforge.rag.chunker import sentence_spans
from lmforge.rag.clean import paragraphs
from lmforge.rag.embedder import Embedder
from lmforge.rag.question import Question
from lmforge.rag.text import STOPWORDS, content_words, stem
from lmforge.rag.types import Chunk

_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|sixty|hundred|thousand|million|billion|half|once|twice"
)
_NUMBER = rf"(?:\d[\d,._]*(?:\.\d+)?|\b(?:{_NUMBER_WORDS})\b)"
_TIME_UNIT = r"(?:ms|milliseconds?|µs|microseconds?|ns|nanoseconds?|s|secs?|seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\b"

# What a window must hold to answer each kind of question (None: any sentence may answer).
VALUE_PATTERNS: dict[str, re.Pattern | None] = {
    "date": re.compile(
        r"\b(1\d{3}|20\d{2})s?\b|\b(January|February|March|April|May|June|July|August|September|"
        r"October|November|December)\b|\b\d{1,2}(st|nd|rd|th) century\b",
        re.I,
    ),
    "duration": re.compile(
        rf"{_NUMBER}\s*-?\s*{_TIME_UNIT}|\b(forever|indefinitely|no timeout|never times? out|"
        r"blocks? (until|forever)|timeout=\w+|wait(s|ing)? (for ever|forever))",
        re.I,
    ),
    "quantity": re.compile(
        rf"{_NUMBER}|\b(unlimited|no limit|unbounded|infinite|any (size|number)|maxsize)\b", re.I
    ),
    "version": re.compile(
        r"\b(version|python)\s+\d+\.\d+|\bnew in \d+\.\d+|\b\d+\.\d+\s+(and|or) (later|newer)", re.I
    ),
    "default": re.compile(
        r"\bdefaults?\b|\bby default\b|\w=[^\s,)]+|\bif (omitted|not (given|specified|set|provided))\b|"
        r"\botherwise\b|\bunless\b|\bis used\b|\binitially\b",
        re.I,
    ),
    "name": re.compile(
        r"\w\(\)|\b[A-Za-z_]\w*\.[A-Za-z_]\w*|\b\w+_\w+\b|\b[a-z]+[A-Z]\w*|\b[A-Z][a-z]+[A-Z]\w*|"
        r"\b\w+(Error|Exception|Warning)\b|\b[A-Z]{3,}\b|--?[a-z][\w-]*",
    ),
    "yesno": None,
    "definition": None,
    "other": None,
}


@dataclass
class Reading:
    """A window of one or two sentences of a passage, and how well it answers the question.

    ``rank`` is the passage's position among the retrieved (0 = best); ``features`` are the
    window's features (`WEIGHTS` names them), ``score`` their weighted sum, raised or lowered by
    a reranker later.
    """

    chunk: Chunk
    rank: int
    sentences: tuple[str, ...]
    score: float
    features: dict[str, float]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def has_value(self) -> bool:
        return bool(self.features["value"])


def reading_sentences(chunk_text: str) -> list[tuple[int, str]]:
    """(paragraph number, sentence) of a passage's cleaned text, in order; headings stand alone."""
    out = []
    for n, paragraph in enumerate(paragraphs(chunk_text)):
        out += [(n, paragraph[a:b]) for a, b in sentence_spans(paragraph, 0, len(paragraph))]
    return out


# A sentence that goes on about the one before it.
_ANAPHORA = re.compile(r"^(It|This|That|These|They|Its|Their|Such|The default)\b")
_VALUE_ASKING = {"default", "duration", "quantity"}


def _named_default(question: Question) -> re.Pattern | None:
    """For a question after a value: ``name=value`` for a name the question uses (a signature's
    ``timeout=1.0`` answers "how long does it wait before it times out")."""
    if question.kind not in _VALUE_ASKING:
        return None
    names = {w for w in re.findall(r"[A-Za-z_]\w+", question.text) if w.lower() not in STOPWORDS}
    names = {n for n in names if len(n) > 2}
    if not names:
        return None
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alternatives})\s*=\s*[^\s,)]", re.IGNORECASE)


_VERSION_NOTE = re.compile(r"^(New in version|Changed in version|Deprecated since version)\b")


def has_value(kind: str, text: str) -> bool:
    """Whether ``text`` holds a value of the kind asked for (any text does, for kinds without
    one: yes/no, definitions)."""
    pattern = VALUE_PATTERNS.get(kind)
    return pattern is None or bool(pattern.search(text))


# The window features and their weights in the score, set by hand on the Python-docs development
# set (benchmarks/qa_dev). Weights fitted there (a listwise objective: the windows holding the
# asked fact against the rest of the question's, cross-validated by question) did no better.
WEIGHTS: dict[str, float] = {
    "similarity": 0.55,  # embedding cosine of question and window (its first or last sentence)
    "coverage": 0.25,  # share of the question's subject words in the window (title/section: half)
    "coverage_idf": 0.20,  # the same, each word weighted by its rarity among the passages read
    "value": 0.15,  # the window holds a value of the asked type
    "named_default": 0.25,  # a signature or text sets a word of the question: "timeout=1.0"
    "extra": -0.04,  # sentences added to the first to reach the value
    "rank": 0.03,  # 1 / (1 + the passage's retrieval rank)
    "code": -0.10,  # the first sentence is a signature or code rather than prose
}


class Reader:
    """Scores every window of the top passages for a question; best first."""

    def __init__(
        self,
        embedder: Embedder,
        max_passages: int = 8,
        weights: dict[str, float] | None = None,
    ):
        self.embedder = embedder
        self.max_passages = max_passages
        self.weights = dict(WEIGHTS if weights is None else weights)

    def read(self, question: Question, chunks: Sequence[Chunk]) -> list[Reading]:
        passages = [(rank, c, reading_sentences(c.text)) for rank, c in enumerate(chunks)]
        passages = passages[: self.max_passages]
        texts = [s for _, _, sentences in passages for _, s in sentences]
        if not texts:
            return []
        vectors = self.embedder.embed([question.text, *texts])
        cosines = iter((vectors[1:] @ vectors[0]).tolist())
        rarity = _rarity([{stem(w) for w in content_words(t)} for t in texts])
        readings = []
        for rank, chunk, sentences in passages:
            cos = [next(cosines) for _ in sentences]
            readings += self._windows(question, rank, chunk, sentences, cos, rarity)
        readings.sort(key=lambda r: r.score, reverse=True)
        return readings

    def _windows(
        self,
        question: Question,
        rank: int,
        chunk: Chunk,
        sentences: list[tuple[int, str]],
        cos: list[float],
        rarity: Callable[[str], float],
    ) -> list[Reading]:
        """Windows of up to three sentences of one paragraph starting at each sentence (a later
        sentence only when it brings the value the first lacks), and a sentence with the version
        note that follows its paragraph."""
        subject = set(question.subject)
        context = {stem(w) for w in content_words(" ".join((chunk.title, *chunk.section)))}
        named = _named_default(question)
        words = [{stem(w) for w in content_words(s)} for _, s in sentences]
        out = []
        version = question.kind == "version"
        for i, (paragraph, first) in enumerate(sentences):
            if len(words[i]) < 2:
                continue
            first_valued = has_value(question.kind, first)
            ends = [i]
            for j in range(i + 1, min(i + 3, len(sentences))):
                following = sentences[j][1]
                if version and j == i + 1 and _VERSION_NOTE.match(first):
                    ends.append(j)  # a version note heading the paragraph it is about
                    continue
                if sentences[j][0] != paragraph and not (
                    version and _VERSION_NOTE.match(following)
                ):
                    break  # a window stays in its paragraph, but for a version note after it
                if not first_valued and has_value(question.kind, following):
                    ends.append(j)
                elif j == i + 1 and _ANAPHORA.match(following):
                    ends.append(j)  # "The epoch is ... It is January 1, 1970": one thought
            for j in ends:
                found = set().union(*words[i : j + 1])
                quote = tuple(s for _, s in sentences[i : j + 1])
                sets_asked = bool(named and named.search(" ".join(quote)))
                features = {
                    "similarity": max(cos[i], 0.9 * cos[j]),
                    "coverage": _coverage(subject, found, context, _alike),
                    "coverage_idf": _coverage(subject, found, context, rarity),
                    "value": float(first_valued or has_value(question.kind, " ".join(quote))),
                    "named_default": float(sets_asked),
                    "extra": float(j - i),
                    "rank": 1.0 / (1 + rank),
                    "code": float(_looks_like_code(first) and not sets_asked),
                }
                score = sum(self.weights.get(k, 0.0) * v for k, v in features.items())
                features["reader_score"] = score
                out.append(Reading(chunk, rank, quote, score, features))
        return out


def _alike(word: str) -> float:
    """Every subject word counts the same."""
    return 1.0


def _rarity(sentence_words: list[set[str]]) -> Callable[[str], float]:
    """An IDF over the sentences read (words in few of them tell passages apart); a word none of
    them holds weighs as the rarest."""
    counts: dict[str, int] = {}
    for words in sentence_words:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    n = len(sentence_words)
    idf = {w: math.log(1 + n / c) for w, c in counts.items()}
    unseen = math.log(1 + n)
    return lambda w: idf.get(w, unseen)


def _coverage(
    subject: set[str], window: set[str], context: set[str], weight: Callable[[str], float]
) -> float:
    """Weighted share of the subject words in the window; words only in the title or section
    path count half."""
    if not subject:
        return 0.0
    found = sum(weight(w) for w in subject & window)
    found += 0.5 * sum(weight(w) for w in (subject - window) & context)
    return found / sum(weight(w) for w in subject)


def _looks_like_code(sentence: str) -> bool:
    """A signature or a line of code rather than prose: no verb-like run of words, many symbols."""
    symbols = sum(sentence.count(ch) for ch in "()[]{}=<>:;'\"")
    return symbols > max(3, len(sentence.split()) // 2) or not re.search(
        r"[a-z]{2,} [a-z]{2,}", sentence
    )


def best_value(kind: str, text: str) -> str | None:
    """The first value of the asked type in ``text`` (for short answers), if the type has one."""
    pattern = VALUE_PATTERNS.get(kind)
    if pattern is None:
        return None
    match = pattern.search(text)
    return match.group(0) if match else None


__all__ = ["Reader", "Reading", "best_value", "has_value", "reading_sentences"]
