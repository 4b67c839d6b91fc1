"""File formats: HF tokenizer.json (with the tokenizers library), native JSON, .tiktoken,
GPT-2 files, GGUF (SmolLM2), and corrupt files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from lmforge.assets import DEFAULT_MODEL
from lmforge.errors import LmforgeError
from lmforge.tokenizer import Tokenizer, load_tokenizer, save_tokenizer, train_bpe
from lmforge.tokenizer.byte_unicode import token_to_str

from .helpers import ALPHABET

CODE = '''def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b  # 3.14159, 1e-9, 0x1F\n    return a\n\n\nprint(f"{fib(100):,}")\t# 354224848179261915075\n'''


def varied_sample(python_docs: str, shakespeare: str, n_random: int = 300) -> list[str]:
    """Code, prose, numbers, unicode, whitespace runs: one string per item."""
    rng = random.Random(42)
    items = (
        python_docs.splitlines(keepends=True)[:1500] + shakespeare.splitlines(keepends=True)[:500]
    )
    items += [
        CODE,
        "  1  22   333\t4444\n\n 55555 ",
        "I'm 25 years old; it's 2024-06-01T12:00:00Z.",
        "\u00a0 \u3000x\r\n",
    ]
    items += [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 40))) for _ in range(n_random)
    ]
    return items


# ---------------------------------------------------------------- HF tokenizer.json


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k", "llama3", "smollm"])
def test_trained_tokenizer_json_loads_in_hf_with_same_ids(
    python_docs: str, shakespeare: str, pattern: str, tmp_path: Path
) -> None:
    """Acceptance 3a: tokenizer.json written by us -> tokenizers.Tokenizer gives our ids."""
    tok = train_bpe(
        texts=[python_docs[:50_000], shakespeare[:20_000]],
        vocab_size=1000,
        pattern=pattern,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        progress=False,
    )
    save_tokenizer(tok, tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    sample = varied_sample(python_docs, shakespeare)
    sample.append("one<|endoftext|>two<|pad|>")
    expected = [e.ids for e in hf.encode_batch(sample, add_special_tokens=False)]
    assert tok.encode_batch(sample, "all") == expected
    assert [tok.encode(t, "all", backend="python") for t in sample] == expected
    assert hf.decode(expected[0]) == sample[0]
    # ... and we read back what we wrote, from the directory and from each file.
    for path in (tmp_path, tmp_path / "tokenizer.json", tmp_path / "lmforge_tokenizer.json"):
        again = load_tokenizer(path)
        assert again.encode_batch(sample, "all") == expected
        assert again.pattern_name == pattern
        assert again.special_tokens == tok.special_tokens


def test_tiktoken_vocab_exports_to_hf(shared_data: Path, python_docs: str, tmp_path: Path) -> None:
    """A rank table has no merge list; we recover one and set ignore_merges, like HF's converter.

    cl100k's first 8,000 ranks (a BPE prefix is itself a valid vocabulary) keep this quick.
    """
    import tiktoken

    full = load_tokenizer(shared_data / "tiktoken" / "cl100k_base.tiktoken")
    vocab = {i: t for i, t in full.vocab.items() if i < 8000}
    tok = Tokenizer(vocab, merges=None, special_tokens={"<|endoftext|>": 8000}, pattern="gpt4")
    save_tokenizer(tok, tmp_path, native=False)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    lines = python_docs.splitlines()[:1000]
    reference = tiktoken.Encoding(
        "cl100k-8k",
        pat_str=tok.pattern,
        mergeable_ranks={t: i for i, t in vocab.items()},
        special_tokens={},
    )
    assert tok.encode_batch(lines) == reference.encode_ordinary_batch(lines)
    assert [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)] == tok.encode_batch(
        lines
    )
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert back.merges is not None and back.encode_batch(lines) == tok.encode_batch(lines)


def test_tiktoken_file_roundtrip(shared_data: Path, tmp_path: Path) -> None:
    from lmforge.tokenizer.formats.tiktoken_file import save_tiktoken

    tok = load_tokenizer(shared_data / "tiktoken" / "gpt2.tiktoken")
    save_tiktoken(tok, tmp_path / "gpt2.tiktoken")
    assert (tmp_path / "gpt2.tiktoken").read_bytes() == (
        shared_data / "tiktoken" / "gpt2.tiktoken"
    ).read_bytes()
    renamed = tmp_path / "mine.tiktoken"
    renamed.write_bytes((tmp_path / "gpt2.tiktoken").read_bytes())
    with pytest.raises(LmforgeError, match="cannot tell the pre-tokenizer"):
        load_tokenizer(renamed)
    assert load_tokenizer(renamed, pattern="gpt2").encode("hi there") == tok.encode("hi there")


def test_tokenizer_config_carries_bos_eos_and_template(tmp_path: Path) -> None:
    tok = train_bpe(
        texts=["hello world " * 20], vocab_size=270, special_tokens=["<s>", "</s>"], progress=False
    )
    tok.bos_id, tok.eos_id = 0, 1
    tok.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
    save_tokenizer(tok, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["bos_token"] == "<s>" and config["eos_token"] == "</s>"
    for path in (tmp_path / "tokenizer.json", tmp_path / "lmforge_tokenizer.json"):
        again = load_tokenizer(path)
        assert (again.bos_id, again.eos_id, again.chat_template) == (0, 1, tok.chat_template)
    assert again.apply_chat_template([{"role": "user", "content": "hi"}]) == "<s>hi</s>"


# ---------------------------------------------------------------- GGUF (SmolLM2)


@pytest.fixture(scope="module")
def smollm2_reader(smollm2_gguf: Path):
    from gguf import GGUFReader

    return GGUFReader(smollm2_gguf)  # parsing 49k tokens takes seconds: once per module


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf: Path, smollm2_reader) -> Tokenizer:
    from lmforge.tokenizer.gguf import read_gguf_tokenizer

    return read_gguf_tokenizer(smollm2_gguf, reader=smollm2_reader)


@pytest.mark.slow
def test_load_tokenizer_reads_gguf_by_path_and_name(smollm2_gguf: Path, smollm2: Tokenizer) -> None:
    for spec in (smollm2_gguf, DEFAULT_MODEL):
        tok = load_tokenizer(spec)
        assert tok.vocab == smollm2.vocab and tok.merges == smollm2.merges


def _smollm2_reference(reader) -> HFTokenizer:
    """SmolLM2's tokenizer built independently with the tokenizers library from the GGUF's
    vocabulary and merges, with SmolLM2's own pre-tokenizer (Digits + ByteLevel)."""
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    hf = HFTokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([t for t, ty in zip(tokens, types, strict=True) if ty == 3])
    return hf


def test_gguf_tokenizer_metadata(smollm2: Tokenizer) -> None:
    assert smollm2.vocab_size == 49152
    assert smollm2.pattern_name == "smollm"
    assert (smollm2.bos_id, smollm2.eos_id) == (1, 2)
    assert smollm2.id_to_token(2) == "<|im_end|>"
    assert len(smollm2.special_tokens) == 17
    assert smollm2.chat_template is not None and "<|im_start|>" in smollm2.chat_template


def test_gguf_tokenizer_matches_smollm2_reference(
    smollm2: Tokenizer,
    smollm2_reader,
    python_docs: str,
    shakespeare: str,
) -> None:
    reference = _smollm2_reference(smollm2_reader)
    sample = varied_sample(python_docs, shakespeare)
    sample.append("<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
    expected = [e.ids for e in reference.encode_batch(sample, add_special_tokens=False)]
    assert smollm2.encode_batch(sample, "all") == expected
    assert [smollm2.encode(t, "all", backend="python") for t in sample] == expected
    assert smollm2.decode(expected[0]) == sample[0]


def test_gguf_tokenizer_write_roundtrip(tmp_path: Path, python_docs: str) -> None:
    import gguf

    from lmforge.tokenizer.gguf import write_gguf_tokenizer

    tok = train_bpe(
        texts=[python_docs[:50_000]],
        vocab_size=600,
        pattern="smollm",
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        progress=False,
    )
    tok.bos_id, tok.eos_id = 1, 2
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    path = tmp_path / "tok.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    write_gguf_tokenizer(writer, tok)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    again = load_tokenizer(path)
    lines = python_docs.splitlines()[:300]
    assert again.encode_batch(lines) == tok.encode_batch(lines)
    assert again.special_tokens == tok.special_tokens
    assert (again.bos_id, again.eos_id, again.chat_template) == (1, 2, tok.chat_template)
    assert again.pattern_name == "smollm"


@pytest.fixture(scope="module")
def hf_smollm2(smollm2_gguf: Path):
    import transformers  # a test dependency: its absence is a failure, not a skip

    return transformers.AutoTokenizer.from_pretrained(
        str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name
    )


@pytest.mark.slow
def test_gguf_tokenizer_vs_transformers(
    smollm2: Tokenizer,
    hf_smollm2,
    python_docs: str,
    shakespeare: str,
) -> None:
    """Acceptance 3b. transformers' GGUF loader ignores `tokenizer.ggml.pre` and always uses
    the plain GPT-2 pre-tokenizer. With that pre-tokenizer our ids equal transformers' on the
    whole sample; with SmolLM2's own ("smollm", digits split) they differ only on text where the
    two pre-tokenizers split differently (whitespace before a digit)."""
    sample = varied_sample(python_docs, shakespeare)
    expected = [hf_smollm2.encode(t, add_special_tokens=False) for t in sample]
    as_transformers = Tokenizer(
        smollm2.vocab, merges=smollm2.merges, special_tokens=smollm2.special_tokens, pattern="gpt2"
    )
    assert as_transformers.encode_batch(sample, "all") == expected
    ours = smollm2.encode_batch(sample, "all")
    for text, mine, theirs in zip(sample, ours, expected, strict=True):
        if mine != theirs:
            assert smollm2._pat.findall(text) != as_transformers._pat.findall(text), text
    assert sum(m == t for m, t in zip(ours, expected, strict=True)) > 0.9 * len(sample)


@pytest.mark.slow
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_gguf_chat_template_renders_like_transformers(
    smollm2: Tokenizer,
    hf_smollm2,
    add_generation_prompt: bool,
) -> None:
    conversations = [
        [{"role": "user", "content": "Hi!"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And ünïcödé 😀?"},
        ],
    ]
    for messages in conversations:
        expected = hf_smollm2.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        assert smollm2.apply_chat_template(messages, add_generation_prompt) == expected


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tokenizer.json", '{"model": {"type": "BPE", "vocab": {', "corrupt tokenizer file"),
        ("tokenizer.json", '{"model": {"type": "WordPiece"}}', "unsupported model type"),
        (
            "tokenizer.json",
            '{"model": {"type": "BPE", "vocab": {}, "merges": []}}',
            "unsupported pre-tokenizer",
        ),
        (
            "lmforge_tokenizer.json",
            '{"format": "lmforge-bpe", "version": 1}',
            "corrupt tokenizer file",
        ),
        ("x.json", "[1, 2]", "expected a JSON object"),
        ("cl100k_base.tiktoken", "not-base64!! 1\n", "corrupt tiktoken file"),
        ("cl100k_base.tiktoken", "", "no tokens"),
        ("model.gguf", "GGUF\x03\x00\x00\x00garbage", "corrupt GGUF file"),
        ("model.bin", "whatever", "unknown tokenizer file type"),
    ],
)
def test_corrupt_tokenizer_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LmforgeError, match=message) as info:
        load_tokenizer(path)
    assert name in str(info.value) or "unsupported" in str(info.value)


def test_missing_tokenizer_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="tokenizer not found"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(LmforgeError, match="no tokenizer in directory"):
        load_tokenizer(tmp_path)


def test_native_json_is_readable(tmp_path: Path) -> None:
    tok = train_bpe(texts=["low lower lowest " * 30], vocab_size=270, progress=False)
    save_tokenizer(tok, tmp_path)
    data = json.loads((tmp_path / "lmforge_tokenizer.json").read_text("utf-8"))
    assert data["pattern_name"] == "gpt2"
    assert data["merges"][0] == " ".join(token_to_str(t) for t in tok.merges[0])
    assert [token_to_str(tok.vocab[i]) for i, _ in data["vocab"][:3]] == [
        s for _, s in data["vocab"][:3]
    ]
