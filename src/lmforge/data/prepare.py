"""`prepare`: raw corpus files -> clean, deduplicated, tokenized train/val shards.

The pipeline, one document at a time (streamed, so the corpus may be larger than memory):

    read (txt/jsonl/parquet) -> Unicode normalise -> quality filters -> exact dedup
    -> near dedup (MinHash LSH) -> tokenize + EOS -> train or val shard

Normalising, filtering, hashing, MinHash signatures and tokenizing run in a pool of worker
processes on batches of documents; the main process keeps the dedup indexes and writes the
shards in input order, so the output does not depend on the number of workers. Each document
goes to val when a hash of its text falls below `val_fraction`; if that leaves val empty (a
single text file), the last `val_fraction` of the train tokens become val, the split nanoGPT
uses for Shakespeare.

Char mode (`tokenizer="char"`) writes code points first and remaps them to ids of the sorted
alphabet at the end, so the alphabet need not be known before the corpus has been read.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lmforge.data.chartok import CharTokenizer
from lmforge.data.dedup import ExactDeduplicator, MinHasher, MinHashLSH, exact_hash
from lmforge.data.filters import FilterConfig, QualityFilter, normalize_text
from lmforge.data.readers import Document, ReadReport, iter_documents
from lmforge.data.shards import FORMAT, ShardWriter, token_dtype, write_meta
from lmforge.errors import LmforgeError

_CHAR_EOS = np.uint32(0xFFFFFFFF)  # placeholder for EOS while writing code points


@dataclass
class PrepareConfig:
    tokenizer: str = "char"  # "char" or anything lmforge.tokenizer.load_tokenizer accepts
    text_field: str = "text"
    txt_mode: str = "file"  # file | paragraph | line
    normalize: str = "NFC"
    val_fraction: float = 0.1
    exact_dedup: bool = True
    near_dedup: bool = True
    near_dup_threshold: float = 0.8
    num_perm: int = 128
    shingle_ngram: int = 5
    filters: FilterConfig | None = field(default_factory=FilterConfig)  # None = no filtering
    workers: int = 0  # 0 = all cores; 1 = in this process
    batch_docs: int = 64
    shard_tokens: int = 1 << 27
    progress: bool = True


def load_tokenizer_spec(spec: str):
    """A tokenizer from a spec: a char-tokenizer directory, or anything load_tokenizer takes."""
    path = Path(spec)
    if (path / "chars.json").is_file():
        return CharTokenizer.load(path)
    from lmforge.tokenizer import load_tokenizer

    return load_tokenizer(spec)


def eos_id_of(tok) -> int | None:
    eos = getattr(tok, "eos_id", None)
    if eos is None:
        eos = getattr(tok, "special_tokens", {}).get("<|endoftext|>")
    return eos


# --- worker side -----------------------------------------------------------------------------

_W: dict = {}


def _init_worker(cfg: PrepareConfig) -> None:
    _W["cfg"] = cfg
    _W["filter"] = QualityFilter(cfg.filters) if cfg.filters is not None else None
    _W["minhash"] = MinHasher(cfg.num_perm, cfg.shingle_ngram) if cfg.near_dedup else None
    if cfg.tokenizer == "char":
        _W["tok"] = None
    else:
        tok = load_tokenizer_spec(cfg.tokenizer)
        eos = eos_id_of(tok)
        if eos is None:
            raise LmforgeError(
                f"tokenizer {cfg.tokenizer!r} has no end-of-text token to separate documents"
            )
        _W["tok"], _W["eos"] = tok, eos


def _process_batch(docs: list[tuple[str, str]]) -> list[tuple]:
    """-> per document (reject_reason | None, digest, signature | None, tokens | None)."""
    cfg: PrepareConfig = _W["cfg"]
    texts, reasons = [], []
    for _, text in docs:
        text = normalize_text(text, cfg.normalize)
        reason = "empty" if not text.strip() else None
        if reason is None and _W["filter"] is not None:
            reason = _W["filter"].check(text)
        texts.append(text)
        reasons.append(reason)
    keep = [i for i, r in enumerate(reasons) if r is None]
    sigs = _W["minhash"].signatures([texts[i] for i in keep]) if _W["minhash"] and keep else None
    out: list[tuple] = []
    k = 0
    for i, text in enumerate(texts):
        if reasons[i] is not None:
            out.append((reasons[i], None, None, None))
            continue
        sig = sigs[k] if sigs is not None else None
        k += 1
        if _W["tok"] is None:
            tokens = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            tokens = np.concatenate([tokens, [_CHAR_EOS]]).astype(np.uint32)
        else:
            tokens = np.array(
                [*_W["tok"].encode(text, allowed_special="none"), _W["eos"]], dtype=np.int64
            )
        out.append((None, exact_hash(text), sig, tokens))
    return out


def _batches(docs: Iterator[Document], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for d in docs:
        batch.append((d.source, d.text))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- main side -------------------------------------------------------------------------------


def prepare(
    inputs: list[str | Path], out_dir: str | Path, config: PrepareConfig | None = None
) -> dict:
    """Run the pipeline; returns (and stores in meta.json) the summary with every count."""
    cfg = config or PrepareConfig()
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise LmforgeError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.bin"), *out.glob("*.idx"), out / "meta.json"]:
        stale.unlink(missing_ok=True)

    char_mode = cfg.tokenizer == "char"
    if char_mode:
        dtype, vocab_size, eos, tok_name = np.dtype(np.uint32), None, None, "char"
    else:
        tok = load_tokenizer_spec(cfg.tokenizer)
        eos = eos_id_of(tok)
        if eos is None:
            raise LmforgeError(
                f"tokenizer {cfg.tokenizer!r} has no end-of-text token to separate documents"
            )
        vocab_size = int(tok.vocab_size)
        dtype = token_dtype(vocab_size)
        tok_name = (
            str(Path(cfg.tokenizer).resolve()) if Path(cfg.tokenizer).exists() else cfg.tokenizer
        )

    report = ReadReport()
    writers = {s: ShardWriter(out, s, dtype, cfg.shard_tokens) for s in ("train", "val")}
    exact = ExactDeduplicator() if cfg.exact_dedup else None
    lsh = MinHashLSH(cfg.near_dup_threshold, cfg.num_perm) if cfg.near_dedup else None
    counts: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    alphabet = np.zeros(0, dtype=np.uint32)
    val_cut = int(cfg.val_fraction * (1 << 64 - 1)) if cfg.val_fraction else 0

    docs = iter_documents(inputs, text_field=cfg.text_field, txt_mode=cfg.txt_mode, report=report)
    batches = _batches(docs, cfg.batch_docs)
    workers = cfg.workers or os.cpu_count() or 1
    pool = None
    if workers > 1:
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(cfg,))
        results = pool.imap(_process_batch, batches, chunksize=1)
    else:
        _init_worker(cfg)
        results = map(_process_batch, batches)
    bar = _progress(cfg.progress)
    try:
        for batch in results:
            for reason, digest, sig, tokens in batch:
                counts["documents_in"] += 1
                if reason is not None:
                    filtered[reason] += 1
                    continue
                if exact is not None and exact.seen(digest):
                    counts["exact_duplicates"] += 1
                    continue
                if lsh is not None and lsh.add(sig):
                    counts["near_duplicates"] += 1
                    continue
                split = "val" if int.from_bytes(digest[:8], "little") < val_cut else "train"
                writers[split].write(tokens)
                counts["documents_kept"] += 1
                if char_mode:
                    present = np.flatnonzero(np.bincount(tokens[:-1])).astype(np.uint32)
                    alphabet = np.union1d(alphabet, present)
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(
                    kept=counts["documents_kept"],
                    dup=counts["exact_duplicates"] + counts["near_duplicates"],
                )
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    shards = {s: w.close() for s, w in writers.items()}

    if report.files_read == 0:
        bad = "; ".join(f"{p}: {r}" for p, r in report.skipped_files) or "no input files given"
        raise LmforgeError(f"no readable input ({bad})")
    if counts["documents_kept"] == 0:
        raise LmforgeError(
            f"no documents left after filtering and deduplication of {', '.join(map(str, inputs))}"
        )

    if char_mode:
        chars = [chr(c) for c in alphabet.tolist()]
        has_eos = counts["documents_kept"] > 1
        ctok = CharTokenizer(chars, eos=has_eos)
        vocab_size, eos = ctok.vocab_size, ctok.eos_id
        dtype = token_dtype(vocab_size)
        for split in shards:
            for info in shards[split]:
                _remap_chars(out, info, alphabet, eos, dtype)
        ctok.save(out / "tokenizer")
        tok_name = "tokenizer"

    if cfg.val_fraction and not any(s["tokens"] for s in shards["val"]):
        shards["val"] = _carve_val(out, shards["train"], cfg.val_fraction, dtype)

    summary = {
        "files_read": report.files_read,
        "files_skipped": [{"path": p, "reason": r} for p, r in report.skipped_files],
        "records_skipped": report.skipped_records,
        "records_skipped_examples": [
            {"where": w, "reason": r} for w, r in report.skipped_record_examples
        ],
        "documents_in": counts["documents_in"],
        "filtered": dict(sorted(filtered.items())),
        "exact_duplicates": counts["exact_duplicates"],
        "near_duplicates": counts["near_duplicates"],
        "documents_kept": counts["documents_kept"],
    }
    splits = {}
    for split, infos in shards.items():
        splits[split] = {
            "tokens": sum(i["tokens"] for i in infos),
            "documents": sum(i["documents"] for i in infos),
            "shards": infos,
        }
        summary[f"{split}_tokens"] = splits[split]["tokens"]
    cfg_dict = asdict(cfg)
    meta = {
        "format": FORMAT,
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab_size,
        "eos_id": eos,
        "tokenizer": tok_name,
        "inputs": [str(p) for p in inputs],
        "config": cfg_dict,
        "splits": splits,
        "summary": summary,
    }
    write_meta(out, meta)
    return meta


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="prepare", unit="doc", dynamic_ncols=True, file=sys.stderr)


def _remap_chars(
    out: Path, info: dict, alphabet: np.ndarray, eos: int | None, dtype, chunk: int = 1 << 24
) -> None:
    """Code points -> ids of the sorted alphabet; EOS placeholders -> eos id (or dropped)."""
    src = out / info["bin"]
    tmp = src.with_suffix(".bin.tmp")
    cps = np.memmap(src, dtype=np.uint32, mode="r") if info["tokens"] else np.zeros(0, np.uint32)
    starts = np.fromfile(out / info["idx"], dtype=np.uint64)
    with open(tmp, "wb") as f:
        for s in range(0, cps.size, chunk):
            c = np.asarray(cps[s : s + chunk])
            is_eos = c == _CHAR_EOS
            ids = np.searchsorted(alphabet, c)
            if eos is None:
                ids = ids[~is_eos]
            else:
                ids[is_eos] = eos
            ids.astype(dtype).tofile(f)
    del cps
    os.replace(tmp, src)
    if eos is None:  # one document: its trailing placeholder was dropped
        starts[-1] -= 1
        info["tokens"] -= 1
        starts.tofile(out / info["idx"])


def _carve_val(out: Path, train: list[dict], fraction: float, dtype) -> list[dict]:
    """Move the last `fraction` of the final train shard's tokens into a val shard."""
    last = train[-1]
    n = last["tokens"]
    cut = int(n * (1.0 - fraction))  # nanoGPT's split: data[: int(n * 0.9)]
    n_val = n - cut
    if n_val < 2:
        return []
    tokens = np.fromfile(out / last["bin"], dtype=dtype)
    starts = np.fromfile(out / last["idx"], dtype=np.uint64).astype(np.int64)
    doc_starts = starts[:-1]
    val_starts = np.concatenate([[0], doc_starts[doc_starts > cut] - cut, [n_val]]).astype(
        np.uint64
    )
    tokens[cut:].tofile(out / "val_00000.bin")
    val_starts.tofile(out / "val_00000.idx")
    train_starts = np.concatenate([doc_starts[doc_starts < cut], [cut]]).astype(np.uint64)
    with open(out / last["bin"], "r+b") as f:
        f.truncate(cut * np.dtype(dtype).itemsize)
    train_starts.tofile(out / last["idx"])
    last.update(tokens=cut, documents=int(train_starts.size - 1))
    return [
        {
            "bin": "val_00000.bin",
            "idx": "val_00000.idx",
            "tokens": n_val,
            "documents": int(val_starts.size - 1),
        }
    ]
