"""Fast decoding: sampling, KV-cache generation, batching, streaming, speculative decoding.

    from lmforge.generate import Generator, SamplingParams, load_chat_model
    gen = Generator(model, tokenizer)
    gen.generate("Once upon a time", SamplingParams(max_new_tokens=32)).text
    chat = load_chat_model("smollm2-135m-instruct")
    chat.chat([{"role": "user", "content": "Hi!"}])

See docs/generate.md.
"""

from lmforge.generate.engine import GenerationResult, Generator, StepEvent
from lmforge.generate.sampling import SamplingParams
from lmforge.generate.text_stream import TextStream

__all__ = ["GenerationResult", "Generator", "SamplingParams", "StepEvent", "TextStream"]

from lmforge.generate.chat import ChatModel, load_chat_model

__all__ += ["ChatModel", "load_chat_model"]
