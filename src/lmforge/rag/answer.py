"""Grounded answering: retrieved passages in, a cited answer or an honest refusal out.

The default ("quote") pipeline: analyse the question (`question.py`) -> refuse if it names an
identifier no readable document contains -> retrieve, refuse if retrieval is weak -> read the
passages' cleaned sentence windows (`reader.py`), reranked by the chat model's question
likelihood when one is loaded -> refuse if the best window does not answer (`Answerability`,
calibrated on benchmarks/qa_dev) -> quote the best window (and a close second), cited.

The "sentence" style keeps the generating pipeline: pack the best chunks into the model's token
budget as numbered sources -> generate with a grounding instruction -> parse ``[n]`` citations ->
check every sentence against the source it cites -> drop (or flag) unsupported sentences -> fall
back to the best supporting sentence, quoted. "short" lifts a typed value, or a phrase the model
copies, out of the best window.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rag.chunker import sentence_spans
from lmforge.rag.clean import clean_markup
from lmforge.rag.embedder import Embedder, MemoEmbedder
from lmforge.rag.filters import ANONYMOUS, Filters, Principal, parse_filters
from lmforge.rag.question import TYPE_WORDS, Question, analyse
from lmforge.rag.reader import Reader, Reading, best_value
from lmforge.rag.retriever import HybridRetriever, RetrievalResult
from lmforge.rag.text import STOPWORDS, content_words, stem
from lmforge.rag.types import ChatModel, Chunk, Hit

REFUSAL = "The documents do not answer this."

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources provided. After each sentence, cite the "
    "source it comes from as [1], [2], and so on. Keep the answer short. If the sources do not contain "
    f'the answer, reply exactly: "{REFUSAL}"'
)

STYLES = ("quote", "sentence", "short")
# kinds whose answer is a value the reader can lift out of a sentence as the short answer
VALUE_KINDS = {"date", "duration", "quantity", "version"}

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@dataclass
class Source:
    n: int
    hit: Hit


@dataclass
class Citation:
    """Source ``n`` of an answer: ``source`` is the document's path relative to the folder it was
    indexed from, ``source_name`` that folder's source name (see `sources.py`)."""

    n: int
    source: str
    title: str
    chunk_id: str
    quote: str
    source_name: str = ""

    @classmethod
    def of(cls, n: int, chunk: Chunk, quote: str) -> Citation:
        title = clean_markup(chunk.title)  # titles are stored raw (":mod:`x` --- ...")
        return cls(n, chunk.path, title, chunk.chunk_id, quote, chunk.source)


@dataclass
class AnswerSentence:
    text: str
    citations: list[int]
    lexical_support: float
    embedding_support: float
    supported: bool


@dataclass
class Answer:
    answer: str
    refused: bool
    citations: list[Citation]
    retrieved: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    mode: str = "generated"  # quoted | generated | extractive (sentence-style fallback) | refused
    sentences: list[AnswerSentence] = field(default_factory=list)
    raw: str = ""
    reading: Reading | None = None  # the reader's best window (what answerability judged)

    def to_json(self) -> dict:
        """The ``lmforge ask --json`` contract (see DESIGN.md)."""
        return {
            "answer": self.answer,
            "refused": self.refused,
            "citations": [
                {
                    "n": c.n,
                    "source": c.source,
                    "title": c.title,
                    "chunk_id": c.chunk_id,
                    "quote": c.quote,
                    "source_name": c.source_name,
                }
                for c in self.citations
            ],
            "retrieved": [
                {
                    "chunk_id": h.chunk.chunk_id,
                    "source": h.chunk.path,
                    "source_name": h.chunk.source,
                    "score": float(h.score),
                }
                for h in self.retrieved
            ],
            "timings_ms": dict(self.timings_ms),
        }


# --- text helpers -------------------------------------------------------------------------------


# `inline code` spans and command-line options ("-m", "--user") in a sentence
_CODE = re.compile(r"`([^`\n]+)`|(?<![\w-])(--?[A-Za-z][\w-]*)")


def code_spans(text: str) -> list[str]:
    """Inline code and command-line options: text a reader will type, so it must be verbatim."""
    return [" ".join((code or option).split()) for code, option in _CODE.findall(text)]


def lexical_support(claim: str, evidence: str) -> float:
    """Share of the claim's content words (lightly stemmed) that appear in the evidence.

    Numbers and code are facts, not phrasing: a claim with a number the evidence lacks, or with
    inline code or a command-line option the evidence does not hold verbatim, scores 0. (Word
    overlap alone passes "python3 -e venv" against "python3 -m venv".)
    """
    words = {stem(w) for w in content_words(claim)}
    if not words:
        return 0.0
    found = {stem(w) for w in content_words(evidence)}
    if any(w.isdigit() and w not in found for w in words):
        return 0.0
    flat_evidence = " ".join(evidence.split())
    for span in code_spans(claim):  # whole tokens: "-e" is not in "tutorial-env"
        if not re.search(rf"(?<![\w-]){re.escape(span)}(?![\w-])", flat_evidence):
            return 0.0
    return len(words & found) / len(words)


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text, 0, len(text))]


def parse_citations(text: str) -> list[int]:
    """Numbers cited as [1], [2, 3] or [1; 2], in order, without repeats."""
    found: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if n not in found:
                found.append(n)
    return found


def answer_sentences(text: str) -> list[tuple[str, list[int]]]:
    """(claim without markers, cited numbers) per sentence. Markers that open a sentence
    ("... the class. [3] Then ...") belong to the sentence before them."""
    out: list[tuple[str, list[int]]] = []
    for sentence in split_sentences(text):
        leading = re.match(r"^(\s*" + _CITATION.pattern + r")+", sentence)
        if leading and out:
            claim, cited = out[-1]
            out[-1] = (
                claim,
                cited + [n for n in parse_citations(leading.group()) if n not in cited],
            )
            sentence = sentence[leading.end() :]
        claim = strip_citations(re.sub(r"^\s*(?:\d+[.)]|[-*•])\s+", "", sentence))  # list markers
        claim = re.sub(r"(?:^|\s)\d+[.)](?=\s|$)", " ", claim).strip()  # "1. 2." fragments
        if claim:
            out.append((claim, parse_citations(sentence)))
    return out


def trim_echo(phrase: str, question: str) -> str:
    """Cut a short answer down to what it adds: leading words that echo the question (or are
    stopwords) go, and so does a trailing clause after the first comma or semicolon."""
    phrase = phrase.strip().strip('"').strip()
    q_words = {stem(w) for w in content_words(question)}
    tokens = re.findall(r"\S+", phrase)
    start = 0
    while start < len(tokens) - 1:
        word = re.sub(r"\W+", "", tokens[start].lower())
        if word and word not in STOPWORDS and stem(word) not in q_words:
            break
        start += 1
    phrase = " ".join(tokens[start:])
    head = re.split(r"[,;]\s", phrase, maxsplit=1)[0]
    if content_words(head):
        phrase = head
    return phrase.rstrip(".?!:").strip()


def strip_citations(text: str) -> str:
    return re.sub(r"\s*" + _CITATION.pattern, "", text).strip()


_SENTENCE_END = re.compile(r"[.!?](?:\s*" + _CITATION.pattern + r")*(?=\s|$)")


def loop_cut(text: str, span: int = 40) -> int | None:
    """Where to cut a reply that has started repeating itself, or None if it has not.

    Greedy decoding of a small model often falls into a loop ("try-finally-finally-..." or the
    same paragraph again). When the last `span` characters already occur earlier, the reply is
    cut at the end of the last whole sentence before that repeated stretch."""
    if len(text) <= span or text.find(text[-span:], 0, len(text) - 1) < 0:
        return None
    repeat_start = len(text) - span
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, repeat_start)]
    return ends[-1] if ends else repeat_start


def build_context(
    hits: Sequence[Hit], count_tokens: Callable[[str], int], budget_tokens: int
) -> tuple[list[Source], str]:
    """Numbered sources, best first, as many as fit ``budget_tokens`` (the first always fits,
    trimmed if needed)."""
    sources: list[Source] = []
    parts: list[str] = []
    used = 0
    for hit in hits:
        n = len(sources) + 1
        head = " > ".join(p for p in (hit.chunk.title, *hit.chunk.section) if p)
        block = f"[{n}] {head}\n{hit.chunk.text.strip()}"
        cost = count_tokens(block) + 2
        if used + cost > budget_tokens:
            if sources:
                break
            # A single oversized chunk: keep its beginning.
            ratio = budget_tokens / max(cost, 1)
            block = block[: int(len(block) * ratio * 0.9)]
            cost = budget_tokens
        sources.append(Source(n, hit))
        parts.append(block)
        used += cost
    return sources, "\n\n".join(parts)


# --- support checking ---------------------------------------------------------------------------


class SupportChecker:
    """Scores how well a source supports a sentence: lexical overlap of content words, and the best
    embedding cosine between the sentence and any sentence of the source."""

    def __init__(
        self,
        embedder: Embedder | None,
        min_lexical: float = 0.6,
        min_embedding: float = 0.55,
        min_lexical_with_embedding: float = 0.3,
    ):
        self.embedder = embedder
        self.min_lexical = min_lexical
        self.min_embedding = min_embedding
        self.min_lexical_with_embedding = min_lexical_with_embedding

    def best_evidence(self, claim: str, source_text: str) -> tuple[str, float, float]:
        """(best quote, lexical support, embedding support) of a source for a claim."""
        sentences = split_sentences(source_text) or [source_text]
        lexical = [lexical_support(claim, s) for s in sentences]
        best_lex = max(range(len(sentences)), key=lambda i: lexical[i])
        whole_lex = lexical_support(claim, source_text)
        emb = 0.0
        best = best_lex
        if self.embedder is not None:
            vecs = self.embedder.embed([claim, *sentences])
            cos = vecs[1:] @ vecs[0]
            best = int(np.argmax(cos + np.array(lexical)))
            emb = float(cos.max())
        return sentences[best].strip(), whole_lex, emb

    def is_supported(self, lexical: float, embedding: float) -> bool:
        return lexical >= self.min_lexical or (
            embedding >= self.min_embedding and lexical >= self.min_lexical_with_embedding
        )


# --- answerers ----------------------------------------------------------------------------------


class ExtractiveAnswerer:
    """The best supporting sentence of the retrieved chunks, quoted and cited. No model needed;
    also the fallback when generation fails its checks."""

    def __init__(self, embedder: Embedder, max_chunks: int = 3, min_score: float = 0.35):
        self.embedder = embedder
        self.max_chunks = max_chunks
        self.min_score = min_score

    def best_sentence(
        self, question: str, sources: Sequence[Source]
    ) -> tuple[Source, str, float] | None:
        candidates: list[tuple[Source, str]] = []
        for source in sources[: self.max_chunks]:
            for sentence in split_sentences(source.hit.chunk.text):
                if len(content_words(sentence)) >= 3:
                    candidates.append((source, sentence.strip()))
        if not candidates:
            return None
        scores = self.score(question, candidates)
        best = int(np.argmax(scores))
        source, sentence = candidates[best]
        return source, sentence, scores[best]

    def score(self, question: str, candidates: Sequence[tuple[Source, str]]) -> list[float]:
        """How well each (source, sentence) answers the question: embedding cosine and the share of
        the question's content words it contains, with a small bonus for better-ranked sources."""
        if not candidates:
            return []
        vecs = self.embedder.embed([question, *[s for _, s in candidates]])
        cos = vecs[1:] @ vecs[0]
        q_words = {stem(w) for w in content_words(question)}
        scores = []
        for i, (source, sentence) in enumerate(candidates):
            words = {stem(w) for w in content_words(sentence)}
            overlap = len(q_words & words) / max(1, len(q_words))
            rank_bonus = 0.05 * (1.0 / source.n)
            scores.append(0.6 * float(cos[i]) + 0.4 * overlap + rank_bonus)
        return scores

    def answer(self, question: str, sources: Sequence[Source]) -> tuple[str, list[Citation]] | None:
        found = self.best_sentence(question, sources)
        if found is None or found[2] < self.min_score:
            return None
        source, sentence, _ = found
        chunk = source.hit.chunk
        return f'"{sentence}" [{source.n}]', [Citation.of(source.n, chunk, sentence)]


class GroundedAnswerer:
    """Retrieve, generate with citations, verify, fall back, or refuse.

    ``chat_model`` is a `ChatModel` (`lmforge.generate.load_chat_model` returns one); without one
    the answer is extractive.
    ``unsupported``: "drop" removes unsupported sentences, "flag" keeps them marked ``[unsupported]``.
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        chat_model: ChatModel | None = None,
        k: int = 8,
        context_tokens: int = 1200,
        max_new_tokens: int = 96,
        min_relevance: float = 0.25,
        unsupported: str = "drop",
        style: str = "quote",
        checker: SupportChecker | None = None,
        relevance_ratio: float = 0.8,
        reader: Reader | None = None,
        answerability: Answerability | None = None,
        rerank_windows: int = 6,
        rerank_weight: float = 0.25,
        second_quote_margin: float = 0.25,
    ):
        if unsupported not in {"drop", "flag"}:
            raise LmforgeError(f"unknown --unsupported mode {unsupported!r} (drop, flag)")
        if style not in STYLES:
            raise LmforgeError(f"unknown answer style {style!r} ({', '.join(STYLES)})")
        if not retriever.similarity:
            raise LmforgeError("the answerer's relevance check needs hits with similarity=True")
        self.retriever = retriever
        self.embedder = retriever.embedder
        self.chat_model = chat_model
        self.k = k
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.min_relevance = min_relevance
        self.unsupported = unsupported
        self.style = style
        # the checks embed the same source sentences for many claims: compute each once
        sentence_embedder = MemoEmbedder(self.embedder) if self.embedder is not None else None
        self.sentence_embedder = sentence_embedder
        self.checker = checker or SupportChecker(sentence_embedder)
        self.relevance_ratio = relevance_ratio
        self.extractive = ExtractiveAnswerer(sentence_embedder)
        self.reader = reader or Reader(sentence_embedder, max_passages=k)
        self.answerability = answerability or Answerability()
        # the model rescores this many of the reader's best windows, its question log-likelihood
        # weighted so against the reader's score (set on benchmarks/qa_dev)
        self.rerank_windows = rerank_windows
        self.rerank_weight = rerank_weight
        # how close (in score) the next distinct window must come to be quoted too
        self.second_quote_margin = second_quote_margin

    def _count_tokens(self, text: str) -> int:
        # the context budget is in the generator's tokens; without a generator, the embedder's
        if self.chat_model is not None:
            return self.chat_model.count_tokens(text)
        return self.embedder.count_tokens([text])[0]

    def relevance(self, question: str, result: RetrievalResult) -> float:
        """How well the best retrieved chunk matches the question: the max over the top hits of
        the dense cosine (carried by each hit), raised by strong lexical coverage of the
        question's content words."""
        best = 0.0
        for hit in result.hits:
            cosine = hit.similarity
            coverage = lexical_support(question, f"{hit.chunk.title} {hit.chunk.text}")
            best = max(best, cosine, coverage - 0.3)
        return best

    def ask(self, question: str, filters=None, principal: Principal = ANONYMOUS) -> Answer:
        """Answer from the documents the principal may read, or refuse saying what is missing."""
        if not question.strip():
            raise LmforgeError("empty question")
        t_all = time.perf_counter()
        asked = analyse(question)
        filters = parse_filters(filters)
        result = self.retriever.run(question, k=self.k, filters=filters, principal=principal)
        timings = {f"retrieve_{k}": v for k, v in result.timings_ms.items()}
        hits = result.hits
        if result.query_vector is not None and self.sentence_embedder is not None:
            # the checks compare answer sentences with the question too: embed it once
            self.sentence_embedder.remember(question, result.query_vector)

        def refuse(text: str = REFUSAL) -> Answer:
            timings["total"] = _ms(t_all)
            return Answer(text, True, [], hits, timings, mode="refused")

        missing = self._unmentioned(asked, filters, principal)
        if missing:
            return refuse(f"The documents do not mention {_join(missing)}.")
        if not hits or self.relevance(question, result) < self.min_relevance:
            return refuse()

        if self.style == "sentence" and self.chat_model is not None:
            answer = self._generated_answer(question, hits, timings)
        else:
            readings = self.read(asked, hits, timings)
            best = readings[0] if readings else None
            if best is None or not self.answerability.answerable(best):
                refusal = refuse(self.answerability.refusal(asked))
                refusal.reading = best
                return refusal
            answer = None
            if self.style == "short":
                t = time.perf_counter()
                answer = self._short_answer(question, asked, best, hits)
                timings["generate"] = _ms(t)
            if answer is None:
                answer = quote_answer(readings, hits, self.second_quote_margin)
            answer.reading = best
        answer.timings_ms = {**timings, "total": _ms(t_all)}
        return answer

    def read(
        self, asked: Question, hits: Sequence[Hit], timings: dict[str, float] | None = None
    ) -> list[Reading]:
        """The reader's windows, best first; with a language model that can score text, the top
        ones reranked by how likely each makes the question (UPR)."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        readings = self.reader.read(asked, [h.chunk for h in hits])
        timings["read"] = _ms(t)
        scorer = getattr(self.chat_model, "continuation_logprobs", None)
        if scorer is None or len(readings) < 2:
            return readings
        t = time.perf_counter()
        top = _distinct(readings)[: self.rerank_windows]
        likelihood = scorer(
            [f"Passage: {r.text}\nA question this passage answers:" for r in top], " " + asked.text
        )
        for reading, logp in zip(top, likelihood, strict=True):
            reading.features["question_logp"] = logp
            reading.features["reader_score"] = reading.score
            reading.score += self.rerank_weight * logp
        top.sort(key=lambda r: r.score, reverse=True)
        timings["rerank"] = _ms(t)
        return top

    def _unmentioned(self, asked: Question, filters: Filters, principal: Principal) -> list[str]:
        """The identifiers the question names that no readable document contains."""
        if not asked.identifiers:
            return []
        store = self.retriever.store
        return store.missing_terms(asked.identifiers, filters, principal)

    def _generated_answer(self, question: str, hits: list[Hit], timings: dict) -> Answer:
        """The "sentence" style: the model writes from numbered sources; checked sentence by
        sentence; the extractive answer when nothing holds up."""
        sources, context = build_context(hits, self._count_tokens, self.context_tokens)
        t = time.perf_counter()
        raw = self._generate(question, context)
        timings["generate"] = _ms(t)
        t = time.perf_counter()
        answer = self._verify(raw, question, sources, hits)
        if answer is not None and not self._on_topic(question, answer, sources):
            answer = None  # faithful to a source, but not an answer to this question
        timings["verify"] = _ms(t)
        if answer is not None:
            return answer
        t = time.perf_counter()
        extracted = self.extractive.answer(question, sources)
        timings["extractive"] = _ms(t)
        if extracted is None:
            return Answer(REFUSAL, True, [], hits, mode="refused")
        text, citations = extracted
        return Answer(text, False, citations, hits, mode="extractive")

    def _short_answer(
        self, question: str, asked: Question, best: Reading, hits: list[Hit]
    ) -> Answer | None:
        """A short phrase for the question, read out of the reader's best window.

        Where the question asks for a typed value (a duration, a version, a number, a date) and
        the window holds one, that value is the phrase, with or without a model. Otherwise the
        model copies a span: small
        models copy from one sentence far more reliably than they answer from pages of context.
        The phrase must come from the window (lexical support) and add something the question
        does not already say.
        """
        window = best.text
        phrase = best_value(asked.kind, window) if asked.kind in VALUE_KINDS else None
        raw = phrase or ""
        lifted = phrase is not None  # a typed value taken from the window as it stands
        if not phrase and self.chat_model is None:
            return None  # without a model only a typed value can be lifted out; quote instead
        if not phrase:
            messages = [
                {
                    "role": "system",
                    "content": "Answer the question with a short phrase copied from the text.",
                },
                {"role": "user", "content": f"Text: {window}\n\nQuestion: {question}"},
            ]
            raw = self.chat_model.chat(
                messages, max_new_tokens=24, temperature=0.0, stop=["\n"]
            ).strip()
            phrase = trim_echo(strip_citations(raw.splitlines()[0] if raw else ""), question)
            words = content_words(phrase)
            new_words = set(words) - set(content_words(question))
            if (
                not words
                or not new_words
                or lexical_support(phrase, window) < 0.75
                or len(words) > 12
            ):
                return None
        citation = Citation.of(1, best.chunk, window)
        checked = [AnswerSentence(phrase, [1], lexical_support(phrase, window), 0.0, True)]
        mode = "quoted" if lifted else "generated"
        return Answer(
            f"{phrase} [1]", False, [citation], hits, mode=mode, sentences=checked, raw=raw
        )

    def _on_topic(self, question: str, answer: Answer, sources: list[Source]) -> bool:
        """The evidence the answer rests on must be about as relevant to the question as the best
        sentence the extractive answerer would pick (a model can quote a true but unrelated line)."""
        by_n = {s.n: s for s in sources}
        quoted = [(by_n[c.n], c.quote) for c in answer.citations if c.n in by_n]
        best = self.extractive.best_sentence(question, sources)
        if not quoted or best is None:
            return bool(quoted)
        return max(self.extractive.score(question, quoted)) >= self.relevance_ratio * best[2]

    def _generate(self, question: str, context: str) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Sources:\n{context}\n\nQuestion: {question}"},
        ]
        reply = ""
        for delta in self.chat_model.stream_chat(
            messages,
            max_new_tokens=self.max_new_tokens,
            temperature=0.0,
            stop=["\n\n\n", "Question:"],
        ):
            reply += delta
            cut = loop_cut(reply)
            if cut is not None:  # going round in circles: stop generating, keep what came before
                reply = reply[:cut]
                break
        return reply.strip()

    def _verify(
        self, raw: str, question: str, sources: list[Source], hits: list[Hit]
    ) -> Answer | None:
        """Keep the sentences their cited source supports; None when nothing survives."""
        if not raw or REFUSAL.lower().rstrip(".") in raw.lower():
            return None
        by_n = {s.n: s for s in sources}
        kept: list[tuple[str, int | None]] = []  # (sentence, supporting source or None)
        checked: list[AnswerSentence] = []
        citations: dict[int, Citation] = {}
        seen_claims: set[str] = set()
        kept_words: list[set[str]] = []  # content words of each kept sentence
        question_words = set(content_words(question))
        for claim, cited in answer_sentences(raw):
            cited = [n for n in cited if n in by_n]
            claim_words = content_words(claim)
            key = " ".join(claim_words)
            if not key or key in seen_claims:  # list markers, repeats
                continue
            seen_claims.add(key)
            words = set(claim_words)
            if any(words <= earlier for earlier in kept_words):
                continue  # a shorter restatement of a sentence already kept adds nothing
            if not words - question_words:
                continue  # restates the question ("The year was [2]."): says nothing
            # An uncited sentence may still be supported: try every source (citation repair).
            candidates = cited or list(by_n)
            best: tuple[float, float, int, str] | None = None
            for n in candidates:
                quote, lex, emb = self.checker.best_evidence(claim, by_n[n].hit.chunk.text)
                if best is None or (lex + emb) > (best[0] + best[1]):
                    best = (lex, emb, n, quote)
            lex, emb, n, quote = best
            supported = self.checker.is_supported(lex, emb)
            checked.append(AnswerSentence(claim, [n] if supported else cited, lex, emb, supported))
            if supported:
                chunk = by_n[n].hit.chunk
                citations.setdefault(n, Citation.of(n, chunk, quote))
                kept.append((claim, n))  # the source that supports it, repaired if need be
                kept_words.append(words)
            elif self.unsupported == "flag":
                kept.append((claim, None))
        while kept and kept[-1][0].endswith(":"):
            kept.pop()  # a lead-in ("Here's how to do it:") whose content was dropped
        used = {n for _, n in kept if n is not None}
        if not used:
            return None
        text = " ".join(f"{c} [{'unsupported' if n is None else n}]" for c, n in kept)
        ordered = [citations[n] for n in sorted(citations) if n in used]
        return Answer(text, False, ordered, hits, mode="generated", sentences=checked, raw=raw)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


class Answerability:
    """Whether the reader's best window answers the question, and the refusal when it does not.

    A logistic model over the window's features (how close it is to the question, how much of the
    question's subject it covers, whether it holds a value of the asked type, its reader score,
    and, when the model reranked the windows, how likely it makes the question). Weights and
    threshold come from benchmarks/qa_dev/calibrate.py: SQuAD 2.0's trick on the development set,
    each answerable question asked again with its own pages filtered out, beside the questions
    the pages never answer.
    """

    # calibrate.py's output; at 0.45 the cross-validated refusal rates on the development set
    # were: answerable 0.06 (0.08 reranked), with their own pages filtered out 0.77 (0.70), the
    # questions the pages never answer 0.86-1.00
    READER: ClassVar[dict[str, float]] = {
        "similarity": 2.751, "coverage": 1.203, "coverage_idf": 1.010, "value": 0.286,
        "named_default": -0.105, "rank": -0.885, "reader_score": 2.033,
    }  # fmt: skip
    READER_BIAS: ClassVar[float] = -2.925
    RERANKED: ClassVar[dict[str, float]] = {
        "similarity": 2.882, "coverage": 1.130, "coverage_idf": 0.716, "value": 0.551,
        "named_default": -0.133, "rank": -0.228, "reader_score": 1.829, "question_logp": 0.051,
    }  # fmt: skip
    RERANKED_BIAS: ClassVar[float] = -3.186

    def __init__(self, threshold: float = 0.45):
        self.threshold = threshold

    def probability(self, best: Reading) -> float:
        """P(the window answers the question), from its features."""
        reranked = "question_logp" in best.features
        weights = self.RERANKED if reranked else self.READER
        z = (self.RERANKED_BIAS if reranked else self.READER_BIAS) + sum(
            w * best.features.get(name, 0.0) for name, w in weights.items()
        )
        return 1.0 / (1.0 + math.exp(-z))

    def answerable(self, best: Reading) -> bool:
        return self.probability(best) >= self.threshold

    def refusal(self, asked: Question) -> str:
        """ "The documents do not answer this: ..." with what was asked (type and subject)."""
        topic = _topic(asked.text)
        what = _ASKED.get(asked.kind, "the answer")
        about = f" about {topic}" if topic else ""
        return f"The documents do not answer this: no passage{about} gives {what}."


_ASKED = {
    "default": "the default value asked for",
    "duration": "the duration asked for",
    "quantity": "the number asked for",
    "version": "the version asked for",
    "name": "the name asked for",
}


def _topic(question: str) -> str:
    """The question's most telling words, as the user wrote them (for a refusal)."""
    words = [w for w in content_words(question) if w not in TYPE_WORDS]
    return " ".join(words[:4])


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _distinct(readings: Sequence[Reading]) -> list[Reading]:
    """Readings best first, each sharing no sentence of its passage with a better one."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in readings:
        keys = {(r.chunk.chunk_id, s) for s in r.sentences}
        if keys & seen:
            continue
        seen |= keys
        out.append(r)
    return out


def quote_answer(readings: Sequence[Reading], hits: list[Hit], margin: float) -> Answer:
    """The best window quoted and cited, and the next distinct one too when it scores within
    ``margin`` of it (a manual often says the fact in two places, or the reader is unsure)."""
    chosen = _distinct(readings)[:2]
    if len(chosen) == 2 and chosen[1].score < chosen[0].score - margin:
        chosen = chosen[:1]
    parts, citations = [], []
    for n, reading in enumerate(chosen, start=1):
        parts.append(f'"{reading.text}" [{n}]')
        citations.append(Citation.of(n, reading.chunk, reading.text))
    return Answer(" ".join(parts), False, citations, list(hits), mode="quoted")
