"""lmforge: a language model's path from raw text to a grounded answer, in one package.

Rooms (see docs/architecture.md): assets, tokenizer, model, kernels, checkpoint, data, train,
generate, rag, eval, and the `lmforge` command (cli). Heavy modules are imported lazily by the
code that needs them, so ``import lmforge`` stays cheap.
"""

from lmforge.errors import LmforgeError

__version__ = "0.1.0"
__all__ = ["LmforgeError", "__version__"]
