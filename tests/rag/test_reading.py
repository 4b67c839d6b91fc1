"""Reading answers out of real documentation, and refusing honestly: the failure shapes of the
grounded-answer issue as regression tests on pages of the Python docs (extractive answerer, so
no model is needed), plus the markup cleaner and the question analysis they rest on."""

from __future__ import annotations

import re
import shutil

import pytest

from lmforge.rag.clean import clean_markup
from lmforge.rag.embedder import EmbeddingCache
from lmforge.rag.indexer import Indexer
from lmforge.rag.pipeline import Pipeline
from lmforge.rag.question import analyse, identifiers
from lmforge.rag.reader import has_value, reading_sentences

PAGES = [
    "gzip",
    "timeit",
    "secrets",
    "http.server",
    "uuid",
    "tempfile",
    "glob",
    "bisect",
    "logging",
]
MARKUP = re.compile(r":(func|meth|class|exc|mod|attr|data|const|ref|term):`|``|^\.\. |::$|\+-{3}")


@pytest.fixture(scope="module")
def docs_pipeline(shared_data, embedder, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("pydocs") / "library"
    corpus.mkdir()
    for page in PAGES:
        shutil.copy(
            shared_data / "python-docs" / "rst_sources" / "library" / f"{page}.rst.txt", corpus
        )
    store_dir = tmp_path_factory.mktemp("store")
    rag = Pipeline.open(store_dir, embedder=embedder)
    Indexer(
        rag.store, embedder, cache=EmbeddingCache(store_dir / "cache.sqlite"), progress=False
    ).run([corpus])
    yield rag
    rag.close()


@pytest.fixture(scope="module")
def answerer(docs_pipeline):
    return docs_pipeline.answerer(None)


def assert_clean(answer) -> None:
    for citation in answer.citations:
        assert not MARKUP.search(citation.quote), citation.quote
    assert not MARKUP.search(answer.answer), answer.answer


# -- the fact is next door ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "fact", "page"),
    [
        # "... compresslevel ... The default is 6" sits after the option's description
        (
            "Which compression level does the python -m gzip command-line tool use by default?",
            r"\b6\b",
            "gzip.rst.txt",
        ),
        # the signature sets it: "timeout=5.0"-style defaults live in signatures
        ("Which port does python -m http.server listen on if I don't give one?", r"8000", "http"),
        # the version note follows the paragraph it is about
        ("In which Python version was the secrets module added?", r"3\.6", "secrets.rst.txt"),
    ],
)
def test_the_fact_in_a_neighbouring_sentence_is_quoted(answerer, question, fact, page):
    answer = answerer.ask(question)
    assert not answer.refused, answer.answer
    assert re.search(fact, answer.answer), answer.answer
    assert any(page in c.source for c in answer.citations)
    assert_clean(answer)


# -- refusals that say what is missing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        # a setting that does not exist
        ("What is the default of gzip.open's parallel_threads argument?", "parallel_threads"),
        # another product's feature, asked as if it were this one's
        ("What is the default work_mem of a PostgreSQL sort?", "work_mem or PostgreSQL"),
        # the answer is only in a page that was not indexed (zlib)
        (
            "Which compression level does zlib's Z_DEFAULT_COMPRESSION stand for?",
            "Z_DEFAULT_COMPRESSION",
        ),
    ],
)
def test_refusal_names_what_the_documents_do_not_mention(answerer, question, missing):
    answer = answerer.ask(question)
    assert answer.refused and answer.citations == []
    assert answer.answer == f"The documents do not mention {missing}."


def test_refusal_without_an_identifier_says_what_was_asked(answerer):
    # near the domain, no identifier to catch: the passages found hold no answer of that kind
    answer = answerer.ask("How many rows does the sqlite3 cursor fetch per call by default?")
    assert answer.refused, answer.answer
    assert answer.answer.startswith("The documents do not answer this")


def test_off_topic_is_refused(answerer):
    assert answerer.ask("Which cheese goes into a classic tiramisu?").refused


# -- clean quotes ------------------------------------------------------------------------------


def test_markup_and_tables_never_reach_a_quote(shared_data):
    raw = (shared_data / "python-docs" / "rst_sources" / "library" / "logging.rst.txt").read_text()
    start = raw.index("This function does nothing if the root logger")
    text = clean_markup(raw[start : start + 6000])
    assert "force: If this keyword argument is specified as true, any existing handlers" in text
    assert "Changed in version 3.8: The force argument was added." in text
    assert not MARKUP.search(text) and "|" not in text
    assert (
        clean_markup(
            "Handle :exc:`ValueError` with :func:`open` or :meth:`~io.IOBase.close`; see "
            "`the guide <https://x.org>`_ and ``python -m venv``::\n\n    import venv\n\n"
            "Next paragraph.\n\n.. versionadded:: 3.2\n   The *flag* parameter.\n"
        )
        == "Handle ValueError with open() or close(); see the guide and python -m venv: import venv\n\n"
        "Next paragraph.\n\nNew in version 3.2. The flag parameter."
    )
    # a Markdown table: one row a line, its header rule dropped
    assert clean_markup("| key | value |\n|---|---|\n| a | 1 |\n| b | 2 |\n") == (
        "key: value\n\na: 1\n\nb: 2"
    )
    # a heading never runs into the sentence after it
    sentences = [s for _, s in reading_sentences("Synopsis\n\nCOMMAND name [ , arg ]\n\nIt runs.")]
    assert sentences == ["Synopsis", "COMMAND name [ , arg ]", "It runs."]


def test_question_analysis():
    assert analyse("How long does sqlite3 wait on a locked database?").kind == "duration"
    assert analyse("What is the default value of the interpolation argument?").kind == "default"
    assert analyse("In which Python version was the secrets module added?").kind == "version"
    assert analyse("Which exception does threading.excepthook ignore?").kind == "name"
    assert analyse("Does asyncio.wait raise TimeoutError?").kind == "yesno"
    assert identifiers(
        "Use JSON.stringify or keepAliveTime, PYTHONLOGLEVEL, max_retries, log4j"
    ) == [
        "JSON",
        "stringify",
        "keepAliveTime",
        "PYTHONLOGLEVEL",
        "max_retries",
        "log4j",
    ]
    assert identifiers("argparse accepts --verbose; it grows past 2 GiB") == []
    assert has_value("duration", "Default five seconds.") and not has_value("duration", "Waits.")
    assert has_value("default", "wait(aws, *, timeout=None)")


def test_short_style_lifts_a_typed_value_without_a_model(docs_pipeline):
    short = docs_pipeline.answerer(None, style="short")
    answer = short.ask("In which Python version was the secrets module added?")
    assert answer.mode == "quoted" and re.fullmatch(r"(version )?3\.6 \[1\]", answer.answer), (
        answer.answer
    )
    assert "3.6" in answer.citations[0].quote
    # nothing typed to lift and no model to copy a phrase: the quote, as in the default style
    quoted = short.ask("What does the secrets module generate?")
    assert quoted.mode == "quoted" and quoted.answer.startswith('"'), quoted.answer
