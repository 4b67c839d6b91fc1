"""Citation parsing, sentence support checks, fallback and refusal.

The generation step uses scripted replies here so each check can be driven into each branch; the
real SmolLM2 path is exercised in test_llm_answer.py.
"""

from __future__ import annotations

import re

import pytest

from lmforge.errors import LmforgeError
from lmforge.rag.answer import (
    REFUSAL,
    GroundedAnswerer,
    answer_sentences,
    build_context,
    code_spans,
    lexical_support,
    loop_cut,
    parse_citations,
)
from lmforge.rag.embedder import EmbeddingCache
from lmforge.rag.indexer import Indexer
from lmforge.rag.retriever import HybridRetriever
from lmforge.rag.stores import open_store


class ScriptedChat:
    """Replies with a fixed text and records the prompt it was given."""

    def __init__(self, reply: str):
        self.reply = reply
        self.messages = None

    def chat(self, messages, max_new_tokens=256, temperature=0.0, stop=None):
        self.messages = messages
        return self.reply

    def stream_chat(self, messages, max_new_tokens=256, temperature=0.0, stop=None):
        self.messages = messages
        self.streamed = ""
        for i in range(0, len(self.reply), 3):  # a few characters at a time, like tokens
            self.streamed += self.reply[i : i + 3]
            yield self.reply[i : i + 3]

    def count_tokens(self, text):
        return len(text.split())


@pytest.fixture
def retriever(corpus, embedder, tmp_path):
    store = open_store(tmp_path / "store")
    Indexer(store, embedder, cache=EmbeddingCache(tmp_path / "c.sqlite"), progress=False).run(
        [corpus]
    )
    yield HybridRetriever(store, embedder)
    store.close()


def test_parse_citations():
    assert parse_citations("A [1]. B [2, 3] and [3; 4].") == [1, 2, 3, 4]
    assert answer_sentences("Lava escapes. [2] Ash falls [1].") == [
        ("Lava escapes.", [2]),
        ("Ash falls.", [1]),
    ]


def test_code_must_match_the_source_verbatim():
    source = "Create it with the venv module: python3 -m venv tutorial-env, then activate it."
    assert code_spans("Run `python3 -m  venv x` with -m and --user.") == [
        "python3 -m venv x",
        "-m",
        "--user",
    ]
    assert code_spans("A well-known, long-term fix.") == []  # hyphenated words are not options
    assert lexical_support("Create it with python3 -m venv tutorial-env.", source) > 0.9
    # the same words, but an option that the source does not have
    assert lexical_support("Create it with python3 -e venv tutorial-env.", source) == 0.0
    assert lexical_support("Create it with `python3 -m venv tutorial-env`.", source) > 0.9
    assert lexical_support("Create it with `python3 -m venv myenv`.", source) == 0.0


def test_context_numbers_sources_and_respects_budget(retriever):
    hits = retriever.run("volcano eruption Pompeii", k=5).hits
    sources, context = build_context(hits, lambda t: len(t.split()), budget_tokens=60)
    assert [s.n for s in sources] == list(range(1, len(sources) + 1))
    assert context.startswith("[1] ") and len(context.split()) <= 60 + 5 * len(sources)
    assert len(sources) < len(hits)


def test_supported_sentences_kept_unsupported_dropped(retriever):
    question = "Which towns did Vesuvius bury?"
    hits = retriever.run(question, k=5).hits
    n = next(i for i, h in enumerate(hits, start=1) if "Pompeii" in h.chunk.text)
    chat = ScriptedChat(
        f"Mount Vesuvius buried Pompeii and Herculaneum [{n}]. The eruption was caused by alien lasers from Jupiter [{n}]."
    )
    answer = GroundedAnswerer(retriever, chat, style="sentence").ask(question)
    assert answer.mode == "generated" and not answer.refused
    assert "Pompeii" in answer.answer and "Jupiter" not in answer.answer
    assert [c.n for c in answer.citations] == [n] and answer.citations[0].source == "volcanoes.md"
    assert "Pompeii" in answer.citations[0].quote
    assert [s.supported for s in answer.sentences] == [True, False]
    assert "[1]" in chat.messages[1]["content"] and question in chat.messages[1]["content"]

    flagged = GroundedAnswerer(
        retriever, ScriptedChat(chat.reply), unsupported="flag", style="sentence"
    ).ask(question)
    assert "Jupiter" in flagged.answer and "[unsupported]" in flagged.answer


def test_restatements_and_dangling_lead_ins_are_dropped(retriever):
    question = "Which towns did Vesuvius bury?"
    hits = retriever.run(question, k=5).hits
    n = next(i for i, h in enumerate(hits, start=1) if "Pompeii" in h.chunk.text)
    other = next(i for i, h in enumerate(hits, start=1) if i != n)
    chat = ScriptedChat(
        f"Mount Vesuvius buried Pompeii and Herculaneum in 79 AD [{n}]. "
        f"Vesuvius buried Pompeii [{n}]. Here is what the other source says: [{other}]"
    )
    answer = GroundedAnswerer(retriever, chat, style="sentence").ask(question)
    assert answer.mode == "generated"
    assert answer.answer == f"Mount Vesuvius buried Pompeii and Herculaneum in 79 AD. [{n}]"
    assert [c.n for c in answer.citations] == [n]  # the dropped lead-in's source is not cited


def test_loop_cut_finds_where_a_reply_starts_repeating():
    assert loop_cut("Pompeii was buried in 79 AD [1]. It was a Roman town.") is None
    stuck = "Use a try-except block [1]. This is a try-finally" + "-finally" * 8
    assert stuck[: loop_cut(stuck)] == "Use a try-except block [1]."
    again = "Break exits the loop early. " * 3
    assert again[: loop_cut(again)].strip() == "Break exits the loop early."
    assert loop_cut("finally-" * 12) is not None  # no sentence end: cut before the repeat


def test_a_looping_reply_is_cut_and_not_read_to_the_end(retriever):
    question = "Which towns did Vesuvius bury?"
    hits = retriever.run(question, k=5).hits
    n = next(i for i, h in enumerate(hits, start=1) if "Pompeii" in h.chunk.text)
    looping = f"Mount Vesuvius buried Pompeii and Herculaneum [{n}]. It buried Pompeii-Pompeii"
    chat = ScriptedChat(looping + "-Pompeii" * 200)
    answer = GroundedAnswerer(retriever, chat, style="sentence").ask(question)
    assert answer.answer == f"Mount Vesuvius buried Pompeii and Herculaneum. [{n}]"
    assert len(chat.streamed) < len(looping) + 100  # generation stopped soon after the loop began


def test_wrong_citation_is_not_accepted(retriever):
    question = "Which towns did Vesuvius bury?"
    hits = retriever.run(question, k=5).hits
    wrong = next(i for i, h in enumerate(hits, start=1) if "Pompeii" not in h.chunk.text)
    answer = GroundedAnswerer(
        retriever,
        ScriptedChat(f"Vesuvius buried Pompeii and Herculaneum [{wrong}]."),
        style="sentence",
    ).ask(question)
    # Cited source does not support it: generation fails the check, the extractive fallback answers.
    assert answer.mode == "extractive" and "Pompeii" in answer.answer
    assert answer.citations[0].source == "volcanoes.md"


def test_hallucination_falls_back_to_extractive(retriever):
    answer = GroundedAnswerer(
        retriever, ScriptedChat("Bananas are purple in winter [1]."), style="sentence"
    ).ask("What is chlorophyll?")
    assert answer.mode == "extractive" and not answer.refused
    assert answer.answer.startswith('"') and re.search(r"\[\d+\]$", answer.answer)
    assert "pigment" in answer.citations[0].quote


def test_model_refusal_with_strong_retrieval_uses_extractive(retriever):
    answer = GroundedAnswerer(retriever, ScriptedChat(REFUSAL), style="sentence").ask(
        "How long is the Aletsch Glacier?"
    )
    assert not answer.refused and "23 kilometres" in answer.answer


def test_the_question_is_embedded_once_per_ask(retriever, monkeypatch):
    """The retriever's query vector serves the answer checks too (no second embedding)."""
    seen: list[str] = []
    embed = retriever.embedder.embed
    monkeypatch.setattr(
        retriever.embedder, "embed", lambda texts: seen.extend(texts) or embed(texts)
    )
    question = "How long is the Aletsch Glacier?"
    answer = GroundedAnswerer(retriever, ScriptedChat(REFUSAL), style="sentence").ask(question)
    assert answer.mode == "extractive"  # the path that compares sentences with the question
    assert seen.count(question) == 1


def test_answerer_needs_hits_that_carry_their_similarity(retriever):
    lexical_only = HybridRetriever(retriever.store, retriever.embedder, similarity=False)
    with pytest.raises(LmforgeError, match="similarity"):
        GroundedAnswerer(lexical_only, None)


def test_weak_retrieval_refuses_without_calling_the_model(retriever):
    chat = ScriptedChat("The 1998 final was won by France [1].")
    answer = GroundedAnswerer(retriever, chat, style="sentence").ask(
        "Who won the 1998 FIFA World Cup final?"
    )
    assert answer.refused and answer.answer == REFUSAL and answer.citations == []
    assert chat.messages is None


def test_true_but_off_topic_answer_is_replaced(retriever):
    question = "Which towns did Vesuvius bury?"
    hits = retriever.run(question, k=10).hits
    n = next(i for i, h in enumerate(hits, start=1) if "Aletsch" in h.chunk.text)
    reply = (
        f"The Aletsch Glacier is the largest glacier in the Alps, about 23 kilometres long [{n}]."
    )
    answer = GroundedAnswerer(retriever, ScriptedChat(reply), k=10, style="sentence").ask(question)
    assert answer.mode == "extractive" and "Pompeii" in answer.answer


def test_short_style_reads_a_phrase_from_the_best_sentence(retriever):
    question = "Which Roman towns did Mount Vesuvius bury?"
    chat = ScriptedChat("Pompeii and Herculaneum.")
    answer = GroundedAnswerer(retriever, chat, style="short").ask(question)
    assert answer.mode == "generated" and answer.answer.startswith("Pompeii and Herculaneum [")
    assert answer.citations[0].source == "volcanoes.md" and "Pompeii" in answer.citations[0].quote
    assert "Pompeii" in chat.messages[1]["content"]  # the model saw the supporting sentence
    # A phrase not in the sentence, or one that only restates the question, is not accepted.
    for reply in ["Rome and Naples", "Roman towns"]:
        fallback = GroundedAnswerer(retriever, ScriptedChat(reply), style="short").ask(question)
        assert fallback.mode == "quoted" and "Pompeii" in fallback.answer, reply


def test_restating_the_question_is_not_an_answer(retriever):
    answer = GroundedAnswerer(
        retriever, ScriptedChat("The glacier is long [1]."), style="sentence"
    ).ask("How long is the Aletsch Glacier?")
    assert answer.mode == "extractive" and "23 kilometres" in answer.answer
