"""From token ids to text deltas: UTF-8-safe incremental decoding and exact stop strings.

A byte-level BPE token can end in the middle of a multi-byte character ("é" may be split over
two tokens), and a stop string can span several tokens. `TextStream` turns one token at a time
into the text that is safe to show now:

- bytes of an incomplete UTF-8 character are held until the character completes (invalid bytes
  become U+FFFD, as `Tokenizer.decode` does);
- text that might be the start of a stop string is held until it is known not to be;
- once a stop string appears, the text is cut exactly before it and the stream is finished.

Joining every delta (plus `flush()`) gives exactly `decode(ids)` cut at the first stop string.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any


class StopStringMatcher:
    """Finds the first stop string in text that arrives in pieces; holds back possible prefixes."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""  # text received but not yet released
        self.stopped = False

    def push(self, text: str) -> str:
        """Add text; return what can be released. After a stop string, returns '' forever."""
        if self.stopped:
            return ""
        self.buffer += text
        if not self.stops:
            out, self.buffer = self.buffer, ""
            return out
        # Every stop string starts inside the buffer: earlier text was released only once it
        # could no longer begin one. The earliest occurrence wins.
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self.buffer[: min(hits)]
            self.buffer = ""
            self.stopped = True
            return out
        keep = self._partial_suffix()
        out = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(self.buffer) - keep :]
        return out

    def flush(self) -> str:
        """The end of the text: release whatever was held back."""
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out

    def _partial_suffix(self) -> int:
        """Length of the longest buffer suffix that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.buffer)), best, -1):
                if self.buffer.endswith(s[:n]):
                    best = n
                    break
        return best


class TextStream:
    """Token ids in, text deltas out (UTF-8 safe, stop strings cut exactly)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopStringMatcher(stops)
        self.text = ""  # everything released so far

    @property
    def stopped(self) -> bool:
        """True once a stop string was found."""
        return self._stops.stopped

    def push(self, token_id: int) -> str:
        piece = self._utf8.decode(self.tokenizer.decode_bytes([token_id]))
        delta = self._stops.push(piece)
        self.text += delta
        return delta

    def flush(self) -> str:
        """Finish: an incomplete trailing character becomes U+FFFD, held text is released."""
        delta = self._stops.push(self._utf8.decode(b"", final=True))
        delta += self._stops.flush()
        self.text += delta
        return delta
