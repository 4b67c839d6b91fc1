"""lmforge: the whole life of a language model in one package.

Rooms (see docs/architecture.md): tokenizer, model, checkpoint, data, train, generate, rag,
eval, safety, ops, serve. Heavy modules are imported lazily by the code that needs them, so
``import lmforge`` stays cheap.
"""

from lmforge.errors import LmforgeError

__version__ = "0.1.0"
__all__ = ["LmforgeError", "__version__"]
