"""`lmforge generate` / `lmforge chat`: bad input gets one clear line and exit 1."""

from __future__ import annotations

import io

import pytest

from lmforge.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["generate", "--prompt", "hi", "--quantize", "int3"], "unknown quantization 'int3'"),
     (["generate", "--prompt", "hi", "--precision", "fp8"], "unknown precision 'fp8'"),
     (["generate", "--prompt", "hi", "--model", "/no/such/model.gguf"], "model not found"),
     (["chat", "--model", "no-such-model"], "model not found")],
)  # fmt: skip
def test_bad_arguments_exit_1_with_one_line(argv, message, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("lmforge: error:")


@pytest.mark.slow
def test_generate_prompt_longer_than_context(capsys) -> None:
    long_prompt = "word " * 9000  # SmolLM2's context is 8,192 tokens
    assert main(["generate", "--prompt", long_prompt, "--max-new-tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert "context is 8192 tokens" in err and err.count("\n") == 1


@pytest.mark.slow
def test_generate_and_chat_run(capsys, monkeypatch) -> None:
    assert (
        main(
            [
                "generate",
                "--prompt",
                "The capital of France is",
                "--max-new-tokens",
                "5",
                "--quantize",
                "int8",
            ]
        )
        == 0
    )
    assert "Paris" in capsys.readouterr().out
    args = ["generate", "--prompt", "The capital of France is", "--max-new-tokens", "5"]
    assert main([*args, "--quantize", "fp16"]) == 0
    assert "Paris" in capsys.readouterr().out
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("What is 2+2? Answer with a number.\n/reset\n/exit\nignored\n")
    )
    assert main(["chat", "--max-new-tokens", "12"]) == 0
    out = capsys.readouterr().out
    assert "4" in out and "(conversation cleared)" in out
