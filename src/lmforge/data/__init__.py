"""Data preparation: read corpora, clean and deduplicate them, tokenize into shards, pack batches.

    from lmforge.data import prepare, PrepareConfig, TokenStream, Batcher
    meta = prepare(["corpus.jsonl"], "data/out", PrepareConfig(tokenizer="tok_dir"))
    batches = Batcher(TokenStream("data/out", "train"), block_size=256, batch_size=32)

Modules: readers (txt/jsonl/parquet), filters (normalisation + Gopher-style quality rules),
dedup (exact + MinHash LSH), chartok (character tokenizer), shards (on-disk format),
prepare (the pipeline), packing (batches, document masks, curriculum). See docs/training.md.
"""

from lmforge.data.chartok import CharTokenizer
from lmforge.data.dedup import ExactDeduplicator, MinHasher, MinHashLSH
from lmforge.data.filters import FilterConfig, QualityFilter, normalize_text
from lmforge.data.prepare import PrepareConfig, load_tokenizer_spec, prepare
from lmforge.data.readers import Document, ReadReport, iter_documents
from lmforge.data.shards import open_split, read_meta
from lmforge.lazy import lazy_exports

# Batching needs torch: loaded on first use, so that `lmforge --help` and `lmforge data prepare`
# do not pay for importing it.
_LAZY = {
    "Batch": "packing",
    "Batcher": "packing",
    "TokenStream": "packing",
    "document_mask": "packing",
}
__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "Batch",
    "Batcher",
    "CharTokenizer",
    "Document",
    "ExactDeduplicator",
    "FilterConfig",
    "MinHashLSH",
    "MinHasher",
    "PrepareConfig",
    "QualityFilter",
    "ReadReport",
    "TokenStream",
    "document_mask",
    "iter_documents",
    "load_tokenizer_spec",
    "normalize_text",
    "open_split",
    "prepare",
    "read_meta",
]
