"""Tokenizer benchmark: lmforge vs HF `tokenizers` (training) and vs tiktoken / HF (encoding).

    python benchmarks/tokenizer.py            # full: Python docs corpus (11 MB), vocab 8192 + 32768
    python benchmarks/tokenizer.py --quick    # 1 MB sample, vocab 2048 (a smoke run)

(a) Training time and peak memory, each trainer in a fresh process, one after the other: lmforge
    `train_bpe` (pre-tokenization on all cores) and HF `tokenizers` ByteLevel BPE with the same
    GPT-2 pattern and the same special token. Target: lmforge within 3x of HF's time.
(b) Encode throughput (MB/s of UTF-8 input, single thread, one document at a time) with the
    cl100k_base vocabulary: lmforge fast backend, lmforge pure-Python encoder, tiktoken, HF
    tokenizers (cl100k exported to tokenizer.json by lmforge). Targets: fast >= 0.9x tiktoken,
    pure Python >= 1 MB/s. Every encoder's ids are checked equal to tiktoken's.
(c) The command line, whole process to whole process on the same file of short lines:
    `lmforge tokenizer encode` with cl100k_base vs a plain script that loads the same file with
    tiktoken and writes `" ".join(ids)` per line from a single-threaded `encode_ordinary` loop.
    Both write to a file, are run alternately (best of several) and must print the same bytes.
    Target: lmforge >= 1.0x the script's speed.

Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CORPUS_DIR = DATA / "python-docs" / "rst_sources"
CL100K = DATA / "tiktoken" / "cl100k_base.tiktoken"
SPECIAL = "<|endoftext|>"


def corpus_documents(limit: int | None) -> list[str]:
    docs, size = [], 0
    for path in sorted(CORPUS_DIR.rglob("*.txt")):
        text = path.read_text("utf-8")
        if limit is not None and size + len(text) > limit:
            text = text[: limit - size]
        docs.append(text)
        size += len(text)
        if limit is not None and size >= limit:
            break
    return docs


def peak_rss_mb() -> float:
    """Peak resident memory of this process plus its largest child (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


# ---------------------------------------------------------------------- training (child side)


def child_train(which: str, corpus: str, vocab_size: int) -> dict[str, float]:
    if which == "lmforge":
        from lmforge.tokenizer import train_bpe

        start = time.perf_counter()
        tok = train_bpe(corpus, vocab_size, special_tokens=[SPECIAL], progress=False)
        seconds = time.perf_counter() - start
        size = tok.vocab_size
    else:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

        from lmforge.tokenizer.patterns import GPT2

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(GPT2), "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[SPECIAL],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        start = time.perf_counter()
        tok.train([corpus], trainer)
        seconds = time.perf_counter() - start
        size = tok.get_vocab_size()
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "vocab": size}


def run_child(which: str, corpus: Path, vocab_size: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(corpus), str(vocab_size)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "true"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- encoding


def throughput(
    encode,
    docs: list[str],
    reference: list[list[int]] | None,
    repeats: int = 1,
) -> tuple[float, list]:
    """MB/s of the best of `repeats` passes over the documents (one thread)."""
    total = sum(len(d.encode("utf-8")) for d in docs)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = [encode(d) for d in docs]
        best = min(best, time.perf_counter() - start)
    seconds = best
    if reference is not None and out != reference:
        raise SystemExit("encoder disagrees with tiktoken: benchmark aborted")
    return total / seconds / 1e6, out


def bench_encode(docs: list[str]) -> list[tuple[str, str, float]]:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import Tokenizer as HFTokenizer

    from lmforge.tokenizer import load_tokenizer, save_tokenizer

    ours = load_tokenizer(CL100K)
    ref = tiktoken.Encoding(
        "cl100k_base",
        pat_str=ours.pattern,
        mergeable_ranks=load_tiktoken_bpe(str(CL100K)),
        special_tokens={},
    )
    ours.encode("warm up the fast backend")
    tk_mbs, reference = throughput(ref.encode_ordinary, docs, None, repeats=3)
    fast_mbs, _ = throughput(lambda d: ours.encode(d, "none"), docs, reference, repeats=3)
    py_mbs, _ = throughput(lambda d: ours.encode(d, "none", backend="python"), docs, reference)
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(ours, tmp, native=False)
        hf = HFTokenizer.from_file(str(Path(tmp) / "tokenizer.json"))
    hf_mbs, _ = throughput(lambda d: hf.encode(d, add_special_tokens=False).ids, docs, reference)
    return [
        (
            "encode MB/s, lmforge fast vs tiktoken",
            f"{fast_mbs:.2f} vs {tk_mbs:.2f}",
            fast_mbs / tk_mbs,
        ),
        (
            "encode MB/s, lmforge pure Python vs tiktoken",
            f"{py_mbs:.2f} vs {tk_mbs:.2f}",
            py_mbs / tk_mbs,
        ),
        (
            "encode MB/s, HF tokenizers vs tiktoken",
            f"{hf_mbs:.2f} vs {tk_mbs:.2f}",
            hf_mbs / tk_mbs,
        ),
        ("encode MB/s, lmforge pure Python (target >= 1)", f"{py_mbs:.2f}", py_mbs),
    ]


# ---------------------------------------------------------------------- command line

# The peer of `lmforge tokenizer encode`: what one would write with tiktoken alone.
PEER_ENCODE = """
import sys
import tiktoken
from tiktoken.load import load_tiktoken_bpe

ranks_file, pattern, path = sys.argv[1:]
enc = tiktoken.Encoding("cl100k_base", pat_str=pattern, mergeable_ranks=load_tiktoken_bpe(ranks_file),
                        special_tokens={})
write = sys.stdout.write
with open(path, "rb") as fh:
    for raw in fh:
        ids = enc.encode_ordinary(raw.removesuffix(b"\\n").decode("utf-8", "replace"))
        write(" ".join(map(str, ids)) + "\\n")
"""


_SKEWED = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")


def bench_cli(corpus: Path, repeats: int) -> tuple[str, float]:
    """(seconds of each side, speed ratio lmforge / peer) for encoding `corpus` line by line."""
    from lmforge.tokenizer.patterns import PATTERNS

    peer = [sys.executable, "-c", PEER_ENCODE, str(CL100K), PATTERNS["cl100k"], str(corpus)]
    ours = [sys.executable, "-m", "lmforge", "tokenizer", "encode", "--tokenizer", str(CL100K),
            "--allowed-special", "none", str(corpus)]  # fmt: skip
    # As installed, for both: PYTHONUNBUFFERED would make the peer's per-line writes system
    # calls, PYTHONDONTWRITEBYTECODE would recompile lmforge's modules on every run.
    env = {k: v for k, v in os.environ.items() if k not in _SKEWED}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    best = {"peer": float("inf"), "ours": float("inf")}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for side, cmd in (("peer", peer), ("ours", ours)):
                out_path = Path(tmp) / f"{side}.txt"
                with open(out_path, "wb") as out:
                    start = time.perf_counter()
                    subprocess.run(cmd, stdout=out, check=True, env=env)
                    best[side] = min(best[side], time.perf_counter() - start)
                outputs[side] = out_path.read_bytes()
    if outputs["peer"] != outputs["ours"]:
        raise SystemExit("lmforge tokenizer encode disagrees with tiktoken: benchmark aborted")
    return f"{best['ours']:.2f} vs {best['peer']:.2f}", best["peer"] / best["ours"]


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 MB sample, vocab 2048")
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each CLI side (best)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, corpus, vocab = args.child
        print(json.dumps(child_train(which, corpus, int(vocab))))
        return

    limit = 1_000_000 if args.quick else None
    vocab_sizes = args.vocab_sizes or ([2048] if args.quick else [8192, 32768])
    docs = corpus_documents(limit)
    size_mb = sum(len(d.encode()) for d in docs) / 1e6
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("".join(docs), "utf-8")
        if not args.skip_train:
            for vocab in vocab_sizes:
                ours = run_child("lmforge", corpus, vocab)
                hf = run_child("hf", corpus, vocab)
                ratio = ours["seconds"] / hf["seconds"]
                rows.append(
                    f"| train {size_mb:.1f} MB, vocab {vocab}: seconds (lmforge vs HF) | "
                    f"{ours['seconds']:.2f} vs {hf['seconds']:.2f} | {ratio:.2f}x | <= 3x | "
                    f"{'yes' if ratio <= 3 else 'NO'} |"
                )
                rows.append(
                    f"| train {size_mb:.1f} MB, vocab {vocab}: peak RSS MB (lmforge vs HF) | "
                    f"{ours['peak_mb']:.0f} vs {hf['peak_mb']:.0f} | "
                    f"{ours['peak_mb'] / hf['peak_mb']:.2f}x | | |"
                )
        if not args.skip_cli:
            value, ratio = bench_cli(corpus, args.repeats)
            lines = corpus.read_bytes().count(b"\n")
            rows.append(
                f"| `lmforge tokenizer encode` {lines} lines, cl100k: seconds (lmforge vs "
                f"tiktoken loop script) | {value} | {ratio:.2f}x | >= 1.0x | "
                f"{'yes' if ratio >= 1.0 else 'NO'} |"
            )
    if not args.skip_encode:
        for label, value, ratio in bench_encode(docs):
            if "target" in label:
                rows.append(
                    f"| {label} | {value} | | >= 1 MB/s | {'yes' if ratio >= 1 else 'NO'} |"
                )
            elif "fast" in label:
                rows.append(
                    f"| {label} | {value} | {ratio:.2f}x | >= 0.9x | {'yes' if ratio >= 0.9 else 'NO'} |"
                )
            else:
                rows.append(f"| {label} | {value} | {ratio:.2f}x | | |")
    print(
        f"\nTokenizer benchmark ({'quick, ' if args.quick else ''}{size_mb:.1f} MB of Python docs, "
        f"{os.cpu_count()} cores)\n"
    )
    print("| measure | value | ratio | target | met |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
