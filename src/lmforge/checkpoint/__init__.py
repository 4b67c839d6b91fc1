"""Checkpoints: read GGUF and HF safetensors models, write HF-compatible directories and GGUF.

Usage::

    from lmforge.checkpoint import load_model, save_pretrained, write_gguf
    handle = load_model(DEFAULT_MODEL)    # a registered name, a .gguf file or a model directory
    handle.model, handle.tokenizer, handle.config, handle.chat_template   # one ModelHandle
    save_pretrained(handle.model, handle.tokenizer, "out/")   # transformers and lmforge load it
    write_gguf(handle.model, handle.tokenizer, "out/model.gguf", qtype="Q8_0")  # llama.cpp runs it
"""

from lmforge.assets import DEFAULT_MODEL, registered_models, resolve_model_path
from lmforge.checkpoint.gguf import GGUFFile, GGUFTensor, read_gguf
from lmforge.checkpoint.gguf_model import write_gguf
from lmforge.checkpoint.handle import ModelHandle
from lmforge.checkpoint.hf import save_pretrained
from lmforge.checkpoint.load import auto_quantization, load_model

__all__ = [
    "DEFAULT_MODEL",
    "GGUFFile",
    "GGUFTensor",
    "ModelHandle",
    "auto_quantization",
    "load_model",
    "read_gguf",
    "registered_models",
    "resolve_model_path",
    "save_pretrained",
    "write_gguf",
]
