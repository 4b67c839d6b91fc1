"""`make demo`: the best end-to-end path lmforge has.

Trains a byte-level BPE tokenizer on TinyShakespeare and shows encode/decode round trips.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from lmforge.tokenizer import load_tokenizer, train_bpe

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/data/tinyshakespeare/input.txt"


def main() -> int:
    if not CORPUS.is_file():
        print(f"lmforge demo: corpus not found: {CORPUS}", file=sys.stderr)
        return 1
    tok = train_bpe([str(CORPUS)], vocab_size=1024, special_tokens=["<|endoftext|>"])
    with tempfile.TemporaryDirectory() as out:
        tok.save(out)
        tok = load_tokenizer(out)
        for text in ["To be, or not to be: that is the question.", "Wherefore art thou Romeo?"]:
            ids = tok.encode(text)
            print(f"{text!r}\n  -> {len(ids)} tokens {ids}\n  -> {tok.decode(ids)!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
