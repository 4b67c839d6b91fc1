"""UTF-8-safe streaming and exact stop strings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.generate.text_stream import StopStringMatcher, TextStream
from model_helpers import byte_tokenizer

TOK = byte_tokenizer()


def stream_all(ids: list[int], stops: tuple[str, ...] = ()) -> list[str]:
    s = TextStream(TOK, stops)
    deltas = [s.push(i) for i in ids]
    deltas.append(s.flush())
    return deltas


def test_multibyte_characters_are_never_split() -> None:
    text = "né 😀 日本"
    deltas = stream_all(list(text.encode()))
    assert "".join(deltas) == text
    # "é" is two bytes: nothing is released after its first byte, then the whole character
    assert deltas[1] == "" and deltas[2] == "é"
    assert all("\ufffd" not in d for d in deltas)


def test_invalid_bytes_become_replacement_like_decode() -> None:
    ids = [0x61, 0xFF, 0x62, 0xE6, 0x97]  # 'a', invalid, 'b', truncated 3-byte char
    assert "".join(stream_all(ids)) == TOK.decode(ids) == "a\ufffdb\ufffd"


def test_stop_string_cut_exactly_across_tokens() -> None:
    deltas = stream_all(list(b"hello STOP world"), ("STOP",))
    assert "".join(deltas) == "hello "
    assert not any("S" in d for d in deltas)  # the held-back prefix never leaked


def test_partial_stop_prefix_is_released_when_it_does_not_complete() -> None:
    assert "".join(stream_all(list(b"a ST b"), ("STOP",))) == "a ST b"


def test_earliest_stop_string_wins() -> None:
    m = StopStringMatcher(["world", "lo w"])
    assert m.push("hello world") == "hel" and m.stopped


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab c\n😀é")), max_size=30),
    stops=st.lists(
        st.text(alphabet=st.sampled_from(list("ab c😀")), min_size=1, max_size=3), max_size=3
    ),
)
def test_stream_equals_decode_then_cut(text: str, stops: list[str]) -> None:
    """Reference: generation stops as soon as some stop string is complete; the text is cut
    just before the earliest stop string in the text so far."""
    ids = list(text.encode())
    expected = text
    for end in range(1, len(text) + 1):
        hits = [i for i in (text[:end].find(s) for s in stops) if i >= 0]
        if hits:
            expected = text[: min(hits)]
            break
    assert "".join(stream_all(ids, tuple(stops))) == expected
