"""Byte-level BPE tokenizer: training, encoding, file formats and chat templates.

from lmforge.tokenizer import Tokenizer, load_tokenizer, train_bpe
tok = train_bpe("corpus.txt", vocab_size=8192, special_tokens=["<|endoftext|>"])
tok.save("out/")                       # tokenizer.json (HF) + lmforge_tokenizer.json
tok = load_tokenizer("out/")           # also .tiktoken, tokenizer.json, GPT-2 dir, .gguf
ids = tok.encode("hello world")

Each name loads its module on first use: reading a tokenizer does not import the trainer.
"""

from lmforge.lazy import lazy_exports

_EXPORTS = {
    "Tokenizer": "core",
    "load_tokenizer": "formats",
    "save_tokenizer": "save",
    "train_bpe": "train",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
