"""`lmforge data prepare`: corpus files -> deduplicated, filtered, tokenized train/val shards."""

from __future__ import annotations

import argparse
import json
import sys

from lmforge.data.filters import NORMALIZATION_FORMS, FilterConfig
from lmforge.data.readers import TXT_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare training data (clean, dedup, tokenize)")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser(
        "prepare",
        help="tokenize corpus files into train/val shards",
        description="Read txt/jsonl/parquet files, normalise, filter (Gopher rules), remove exact "
        "and near duplicates (MinHash LSH), tokenize in parallel into memory-mapped shards.",
    )
    p.add_argument(
        "--tokenizer", required=True, help="'char' for characters, or a tokenizer dir/file/name"
    )
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="FILE",
        help="corpus files (.txt, .jsonl, .parquet)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--text-field", default="text", help="JSON/Parquet field holding the text (default: text)"
    )
    p.add_argument(
        "--txt-mode",
        choices=TXT_MODES,
        default="file",
        help="what is one document in a .txt file (default: the whole file)",
    )
    p.add_argument(
        "--normalize", choices=NORMALIZATION_FORMS, default="NFC", help="Unicode normalisation"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.01, help="share of documents for validation"
    )
    p.add_argument(
        "--near-dup-threshold",
        type=float,
        default=0.8,
        help="Jaccard threshold for near duplicates",
    )
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    p.add_argument("--no-exact-dedup", action="store_true", help="keep exact duplicates")
    p.add_argument("--no-near-dedup", action="store_true", help="keep near duplicates")
    p.add_argument("--no-filter", action="store_true", help="switch off the quality filters")
    p.add_argument(
        "--min-words", type=int, default=50, help="quality filter: fewest words per document"
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--shard-tokens", type=int, default=1 << 27, help="tokens per shard file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from lmforge.data.prepare import PrepareConfig, prepare

    filters = None if args.no_filter else FilterConfig(min_words=args.min_words)
    cfg = PrepareConfig(
        tokenizer=args.tokenizer,
        text_field=args.text_field,
        txt_mode=args.txt_mode,
        normalize=args.normalize,
        val_fraction=args.val_fraction,
        exact_dedup=not args.no_exact_dedup,
        near_dedup=not args.no_near_dedup,
        near_dup_threshold=args.near_dup_threshold,
        num_perm=args.num_perm,
        filters=filters,
        workers=args.workers,
        shard_tokens=args.shard_tokens,
        progress=not args.quiet,
    )
    meta = prepare(args.input, args.out, cfg)
    s = meta["summary"]
    for item in s["files_skipped"]:
        print(f"lmforge: skipped {item['path']}: {item['reason']}", file=sys.stderr)
    for item in s["records_skipped_examples"]:
        print(f"lmforge: skipped record {item['where']}: {item['reason']}", file=sys.stderr)
    print(json.dumps(s, indent=2))
    print(f"wrote {args.out} (train {s['train_tokens']:,} tokens, val {s['val_tokens']:,} tokens, "
          f"vocab {meta['vocab_size']}, {meta['dtype']})")  # fmt: skip
    return 0
