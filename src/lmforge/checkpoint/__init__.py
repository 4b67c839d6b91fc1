"""Checkpoints: read GGUF and HF safetensors models, write HF-compatible directories and GGUF.

Usage::

    from lmforge.checkpoint import load_model, save_pretrained, write_gguf
    model, tok = load_model(DEFAULT_MODEL)    # a registered name, a .gguf file or a model directory
    save_pretrained(model, tok, "out/")                 # transformers and lmforge both load it
    write_gguf(model, tok, "out/model.gguf", qtype="Q8_0")  # llama.cpp runs it
"""

from lmforge.assets import DEFAULT_MODEL, registered_models, resolve_model_path
from lmforge.checkpoint.gguf import GGUFFile, GGUFTensor, read_gguf
from lmforge.checkpoint.gguf_model import write_gguf
from lmforge.checkpoint.hf import save_pretrained
from lmforge.checkpoint.load import as_dtype, load_model

__all__ = [
    "DEFAULT_MODEL",
    "GGUFFile",
    "GGUFTensor",
    "as_dtype",
    "load_model",
    "read_gguf",
    "registered_models",
    "resolve_model_path",
    "save_pretrained",
    "write_gguf",
]
