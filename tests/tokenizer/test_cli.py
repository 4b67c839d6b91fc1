"""`lmforge tokenizer ...`: the commands, their output, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

from lmforge.cli import main
from lmforge.tokenizer import load_tokenizer


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def corpus(tmp_path: Path, python_docs: str) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(python_docs[:60_000], "utf-8")
    return path


@pytest.fixture
def trained_dir(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "tok"
    code, _, err = run(
        capsys, "tokenizer", "train", str(corpus), "--vocab-size", "600", "--pattern", "gpt4",
        "--special", "<|endoftext|>", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    return out


def test_train_writes_hf_and_native_files(trained_dir: Path, python_docs: str) -> None:
    assert {p.name for p in trained_dir.iterdir()} == {
        "tokenizer.json",
        "tokenizer_config.json",
        "lmforge_tokenizer.json",
    }
    tok = load_tokenizer(trained_dir)
    assert tok.vocab_size == 600 and tok.pattern_name == "gpt4"
    hf = HFTokenizer.from_file(str(trained_dir / "tokenizer.json"))
    text = python_docs[60_000:70_000]
    assert hf.encode(text).ids == tok.encode(text)


def test_encode_one_line_per_input_line(
    trained_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Hello world", "", "  indented <|endoftext|> text", "last line without newline"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines), "utf-8")
    tok = load_tokenizer(trained_dir)
    for target in (trained_dir, trained_dir / "tokenizer.json"):
        code, out, _ = run(capsys, "tokenizer", "encode", "--tokenizer", str(target), str(src))
        assert code == 0
        assert out.splitlines() == [" ".join(map(str, tok.encode(x, "all"))) for x in lines]
    # and decode turns the ids back into the lines
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(out, "utf-8")
    code, text, _ = run(capsys, "tokenizer", "decode", "-t", str(trained_dir), str(ids_file))
    assert code == 0 and text.splitlines() == lines


def test_encode_tiktoken_file_and_stdin(
    shared_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    path = shared_data / "tiktoken" / "cl100k_base.tiktoken"
    tok = load_tokenizer(path)
    ref = tiktoken.Encoding(
        "c", pat_str=tok.pattern, mergeable_ranks=load_tiktoken_bpe(str(path)), special_tokens={}
    )
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO("héllo wörld 123\n\tcode()\n".encode()))
    )
    code, out, _ = run(capsys, "tokenizer", "encode", "--tokenizer", str(path))
    assert code == 0
    assert out == "".join(
        " ".join(map(str, ref.encode_ordinary(x))) + "\n" for x in ["héllo wörld 123", "\tcode()"]
    )


def test_info(trained_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, _ = run(capsys, "tokenizer", "info", "-t", str(trained_dir), "--json")
    info = json.loads(out)
    assert code == 0 and info["vocab_size"] == 600 and info["merges"] == 599 - 256
    code, out, _ = run(capsys, "tokenizer", "info", "-t", str(trained_dir))
    assert code == 0 and "vocab_size" in out and "<|endoftext|>=0" in out


def test_non_utf8_corpus_is_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mixed.txt"
    src.write_bytes(b"valid text here\n" * 50 + b"caf\xe9 \xff\xfe\n" * 50)
    code, _, err = run(
        capsys,
        "tokenizer",
        "train",
        str(src),
        "--vocab-size",
        "300",
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    )
    assert code == 0 and "not valid UTF-8" in err
    code, out, err = run(capsys, "tokenizer", "encode", "-t", str(tmp_path / "o"), str(src))
    assert code == 0 and "invalid UTF-8" in err and len(out.splitlines()) == 100


def test_encode_across_many_blocks(
    trained_dir: Path,
    tmp_path: Path,
    python_docs: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tiny blocks (and lines longer than a block) give the ids of each line in order, and
    the bad-UTF-8 warning names the right line."""
    from lmforge.tokenizer import cli as tokenizer_cli

    monkeypatch.setattr(tokenizer_cli, "_BLOCK", 97)
    lines = python_docs[:30_000].split("\n")
    raw = "\n".join(lines).encode() + b"\nbad \xff byte\n\nlast"
    src = tmp_path / "in.txt"
    src.write_bytes(raw)
    code, out, err = run(capsys, "tokenizer", "encode", "-t", str(trained_dir), str(src))
    assert code == 0
    tok = load_tokenizer(trained_dir)
    texts = [*lines, "bad \ufffd byte", "", "last"]
    assert out.splitlines() == [" ".join(map(str, tok.encode(t, "all"))) for t in texts]
    assert f"line {len(lines) + 1}: invalid UTF-8" in err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmforge: error: "), err
    for needle in needles:
        assert needle in lines[0], err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--vocab-size", "100"], ["vocab size 100 is too small"]),
        (["--vocab-size", "300", "--pattern", "gpt5"], ["unknown pattern name 'gpt5'"]),
        (["--vocab-size", "300", "--pattern", "(unclosed"], ["invalid pre-tokenizer regex"]),
    ],
)
def test_train_bad_options(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needles: list[str],
) -> None:
    code, _, err = run(
        capsys, "tokenizer", "train", str(corpus), "--out", str(tmp_path / "o"), *args
    )
    _assert_one_line_error(code, err, *needles)


def test_train_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = str(tmp_path / "o")
    code, _, err = run(
        capsys, "tokenizer", "train", str(empty), "--vocab-size", "300", "--out", out
    )
    _assert_one_line_error(code, err, "empty corpus", "empty.txt")
    code, _, err = run(
        capsys,
        "tokenizer",
        "train",
        str(tmp_path / "nope.txt"),
        "--vocab-size",
        "300",
        "--out",
        out,
    )
    _assert_one_line_error(code, err, "corpus file not found", "nope.txt")
    code, _, err = run(
        capsys, "tokenizer", "train", str(tmp_path), "--vocab-size", "300", "--out", out
    )
    _assert_one_line_error(code, err, "not a file")


def test_encode_bad_inputs(
    trained_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "tokenizer", "encode", "-t", str(trained_dir), str(tmp_path / "missing.txt")
    )
    _assert_one_line_error(code, err, "cannot read input file", "missing.txt")
    code, _, err = run(capsys, "tokenizer", "encode", "-t", str(tmp_path / "nope"), str(tmp_path))
    _assert_one_line_error(code, err, "tokenizer not found", "nope")
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", ')
    code, _, err = run(capsys, "tokenizer", "encode", "-t", str(broken))
    _assert_one_line_error(code, err, "corrupt tokenizer file", "tokenizer.json")
    bad_ids = tmp_path / "ids.txt"
    bad_ids.write_text("1 2 x\n")
    code, _, err = run(capsys, "tokenizer", "decode", "-t", str(trained_dir), str(bad_ids))
    _assert_one_line_error(code, err, "ids.txt line 1", "token ids")
    bad_ids.write_text("1 2\n999999\n")
    code, _, err = run(capsys, "tokenizer", "decode", "-t", str(trained_dir), str(bad_ids))
    _assert_one_line_error(code, err, "ids.txt line 2", "999999")


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tokenizer", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for sub in ("train", "encode", "decode", "info"):
        assert sub in out


@pytest.mark.slow
def test_encode_with_gguf_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smollm2_gguf: Path
) -> None:
    from lmforge.tokenizer.gguf import read_gguf_tokenizer

    src = tmp_path / "in.txt"
    lines = ["<|im_start|>user", "What is 12+30?<|im_end|>", "    indented 42"]
    src.write_text("\n".join(lines) + "\n", "utf-8")
    tok = read_gguf_tokenizer(smollm2_gguf)
    code, out, _ = run(capsys, "tokenizer", "encode", "-t", str(smollm2_gguf), str(src))
    assert code == 0
    assert out.splitlines() == [" ".join(map(str, tok.encode(x, "all"))) for x in lines]
