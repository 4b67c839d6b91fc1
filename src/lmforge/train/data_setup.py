"""Where a run's tokens come from: a prepared directory, or raw text prepared on the spot.

`data.dir` names an existing `lmforge data prepare` output. Otherwise `data.path` (default:
TinyShakespeare at ../shared/data/tinyshakespeare/input.txt relative to the repository root) is
prepared into OUT/data by rank 0: "char" tokenizes characters (nanoGPT's Shakespeare recipe),
"bpe" first trains our byte-level BPE (lmforge.tokenizer.train_bpe) on the same text, and any
other value is a tokenizer path or name. A resumed run reuses OUT/data when its inputs are
unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.data.chartok import CharTokenizer
from lmforge.data.prepare import PrepareConfig, load_tokenizer_spec, prepare
from lmforge.data.shards import read_meta
from lmforge.errors import LmforgeError
from lmforge.train import distributed as D

DEFAULT_TEXT = "../shared/data/tinyshakespeare/input.txt"
EOT = "<|endoftext|>"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def resolve_input(path: str, config_source: str) -> Path:
    """A relative path is tried against the current directory, the recipe's repository (the
    parent of its configs/ folder) and this package's repository, in that order."""
    p = Path(path).expanduser()
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path.cwd() / p]
        src = Path(config_source)
        if src.is_file():
            candidates.append(src.resolve().parent.parent / p)
        candidates.append(repo_root() / p)
    for c in candidates:
        if c.exists():
            return c.resolve()
    raise LmforgeError(
        f"data file not found: {path} (looked in: {', '.join(str(c.parent) for c in candidates)})"
    )


def resolve_data(cfg, out: Path, dist: D.DistInfo):
    """-> (prepared data directory, tokenizer object)."""
    d = cfg.data
    if d.dir:
        data_dir = resolve_input(d.dir, cfg.source)
        meta = read_meta(data_dir)
        return data_dir, _tokenizer_for(data_dir, meta)

    paths = d.path if isinstance(d.path, list) else [d.path or DEFAULT_TEXT]
    inputs = [resolve_input(p, cfg.source) for p in paths]
    data_dir = out / "data"
    fingerprint = {
        "inputs": [[str(p), p.stat().st_size, int(p.stat().st_mtime)] for p in inputs],
        "tokenizer": d.tokenizer,
        "bpe_vocab_size": d.bpe_vocab_size if d.tokenizer == "bpe" else None,
        "bpe_pattern": d.bpe_pattern if d.tokenizer == "bpe" else None,
        "val_fraction": d.val_fraction,
        "text_field": d.text_field,
    }
    if dist.main and not _up_to_date(data_dir, fingerprint):
        spec = d.tokenizer
        if spec == "bpe":
            spec = str(
                _train_bpe(
                    inputs, out / "tokenizer", d.bpe_vocab_size, d.bpe_pattern, cfg.train.progress
                )
            )
        elif spec != "char":
            spec = (
                str(resolve_input(spec, cfg.source)) if Path(spec).suffix or "/" in spec else spec
            )
        big = sum(p.stat().st_size for p in inputs) > 64 << 20
        prepare(
            inputs,
            data_dir,
            PrepareConfig(
                tokenizer=spec,
                text_field=d.text_field,
                val_fraction=d.val_fraction,
                near_dedup=False,  # raw text for one run: keep it as given (use `data prepare`)
                filters=None,
                workers=0 if big else 1,
                progress=cfg.train.progress and big,
            ),
        )
        (data_dir / "fingerprint.json").write_text(json.dumps(fingerprint))
    D.barrier(dist)
    return data_dir, _tokenizer_for(data_dir, read_meta(data_dir))


def _up_to_date(data_dir: Path, fingerprint: dict) -> bool:
    f = data_dir / "fingerprint.json"
    try:
        return json.loads(f.read_text()) == fingerprint and (data_dir / "meta.json").is_file()
    except (OSError, ValueError):
        return False


def _train_bpe(
    inputs: list[Path], tok_dir: Path, vocab_size: int, pattern: str, progress: bool
) -> Path:
    from lmforge.tokenizer import train_bpe

    tok = train_bpe(
        [str(p) for p in inputs],
        vocab_size,
        pattern=pattern,
        special_tokens=[EOT],
        progress=progress,
    )
    tok.save(str(tok_dir))
    return tok_dir


def _tokenizer_for(data_dir: Path, meta: dict):
    spec = meta["tokenizer"]
    if spec == "tokenizer" or (data_dir / spec / "chars.json").is_file():
        return CharTokenizer.load(data_dir / spec)
    return load_tokenizer_spec(spec)
