"""Byte-level BPE tokenizer: training, encoding, file formats and chat templates.

from lmforge.tokenizer import Tokenizer, load_tokenizer, train_bpe
tok = train_bpe("corpus.txt", vocab_size=8192, special_tokens=["<|endoftext|>"])
tok.save("out/")                       # tokenizer.json (HF) + lmforge_tokenizer.json
tok = load_tokenizer("out/")           # also .tiktoken, tokenizer.json, GPT-2 dir, .gguf
ids = tok.encode("hello world")
"""

from lmforge.tokenizer.core import Tokenizer
from lmforge.tokenizer.formats import load_tokenizer, save_tokenizer
from lmforge.tokenizer.train import train_bpe

__all__ = ["Tokenizer", "load_tokenizer", "save_tokenizer", "train_bpe"]
