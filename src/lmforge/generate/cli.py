"""`lmforge generate` and `lmforge chat`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lmforge.assets import DEFAULT_MODEL
from lmforge.errors import LmforgeError


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file, model dir or registered name")
    p.add_argument(
        "--precision", "--dtype", dest="precision", default="auto",
        help="fp32 | bf16 | fp16 | auto (bf16 on AMX CPUs, else fp32)",
    )  # fmt: skip
    p.add_argument(
        "--quantize", default="auto",
        help="int8 | int4 | fp16 | none | auto (int4 when the GGUF is already Q4_0/Q4_1: lossless repack)",
    )  # fmt: skip
    p.add_argument("--group-size", type=int, default=32, help="int4 group size: 32, 64 or 128")


def _sampling_args(p: argparse.ArgumentParser, max_new_tokens: int) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--seed", type=int, default=None)


def register(subparsers: Any) -> None:
    g = subparsers.add_parser("generate", help="continue a prompt with a language model")
    _model_args(g)
    g.add_argument("--prompt", required=True, help="the text to continue")
    _sampling_args(g, max_new_tokens=128)
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    g.add_argument("--stream", action="store_true", help="print text as it is generated")
    g.set_defaults(func=run_generate)

    c = subparsers.add_parser("chat", help="interactive chat (/reset clears, /exit quits)")
    _model_args(c)
    _sampling_args(c, max_new_tokens=512)
    c.add_argument("--system", default=None, help="system message")
    c.set_defaults(func=run_chat)


def _sampling(args: argparse.Namespace, default_temperature: float) -> dict[str, Any]:
    t = default_temperature if args.temperature is None else args.temperature
    return dict(
        temperature=t, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repetition_penalty=args.repetition_penalty, seed=args.seed,
    )  # fmt: skip


def _load(args: argparse.Namespace) -> Any:
    from lmforge.assets import precision_name
    from lmforge.checkpoint.load import quantize_name
    from lmforge.generate.chat import load_chat_model

    # bad values fail before the model loads
    precision_name(args.precision)
    quantize_name(args.quantize)
    if args.max_new_tokens < 1:
        raise LmforgeError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    return load_chat_model(
        args.model, precision=args.precision, quantize=args.quantize, group_size=args.group_size
    )


def run_generate(args: argparse.Namespace) -> int:
    chat = _load(args)
    kw = _sampling(args, 0.0)
    if args.chat:
        ids = chat.prompt_ids([{"role": "user", "content": args.prompt}])
        params = chat.params(args.max_new_tokens, stop=args.stop, **kw)
    else:
        from lmforge.generate.sampling import SamplingParams

        ids = args.prompt
        params = SamplingParams(max_new_tokens=args.max_new_tokens, stop=tuple(args.stop), **kw)
    if args.stream:
        for delta in chat.generator.stream(ids, params):
            print(delta, end="", flush=True)
        print()
    else:
        print(chat.generator.generate(ids, params).text)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    chat = _load(args)
    kw = _sampling(args, 0.0)
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages: list[dict[str, str]] = list(system)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"lmforge chat with {args.model} ({chat.context_length} tokens of context). "
              "/reset starts over, /exit quits.")  # fmt: skip
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            messages = list(system)
            print("(conversation cleared)")
            continue
        messages.append({"role": "user", "content": text})
        try:
            ids = chat.prompt_ids(messages)
            budget = min(args.max_new_tokens, chat.context_length - len(ids))
            if budget < 1:
                raise LmforgeError(
                    f"the conversation is {len(ids)} tokens, the model's context is "
                    f"{chat.context_length}: /reset to start over"
                )
            reply = []
            for delta in chat.generator.stream(ids, chat.params(budget, stop=args.stop, **kw)):
                reply.append(delta)
                print(delta, end="", flush=True)
            print()
        except LmforgeError as exc:
            messages.pop()
            print(f"lmforge: error: {exc}", file=sys.stderr)
            continue
        messages.append({"role": "assistant", "content": "".join(reply)})
    return 0
