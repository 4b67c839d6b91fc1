"""Fast decoding: sampling, KV-cache generation, batching, streaming, speculative decoding.

    from lmforge.generate import Generator, SamplingParams, load_chat_model
    gen = Generator(model, tokenizer)
    gen.generate("Once upon a time", SamplingParams(max_new_tokens=32)).text
    chat = load_chat_model()  # the bundled default model
    chat.chat([{"role": "user", "content": "Hi!"}])

See docs/generate.md.
"""

from lmforge.lazy import lazy_exports

_EXPORTS = {
    "GenerationResult": "engine",
    "Generator": "engine",
    "StepEvent": "engine",
    "SamplingParams": "sampling",
    "TextStream": "text_stream",
    "ChatModel": "chat",
    "load_chat_model": "chat",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
