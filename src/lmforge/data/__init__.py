"""Data preparation: read corpora, clean and deduplicate them, tokenize into shards, pack batches.

    from lmforge.data import prepare, PrepareConfig, TokenStream, Batcher
    meta = prepare(["corpus.jsonl"], "data/out", PrepareConfig(tokenizer="tok_dir"))
    batches = Batcher(TokenStream("data/out", "train"), block_size=256, batch_size=32)

Modules: readers (txt/jsonl/parquet), filters (normalisation + Gopher-style quality rules),
dedup (exact + MinHash LSH), chartok (character tokenizer), shards (on-disk format),
prepare (the pipeline), packing (batches, document masks, curriculum). See docs/training.md.
"""

from lmforge.lazy import lazy_exports

# Public names and the module that defines each. Loaded on first use (PEP 562) so that the command
# line can import `lmforge.data.filters` for its option choices without importing torch.
_EXPORTS = {
    "CharTokenizer": "chartok",
    "ExactDeduplicator": "dedup",
    "MinHasher": "dedup",
    "MinHashLSH": "dedup",
    "FilterConfig": "filters",
    "QualityFilter": "filters",
    "normalize_text": "filters",
    "Batch": "packing",
    "Batcher": "packing",
    "TokenStream": "packing",
    "document_mask": "packing",
    "PrepareConfig": "prepare",
    "load_tokenizer_spec": "prepare",
    "prepare": "prepare",
    "Document": "readers",
    "ReadReport": "readers",
    "iter_documents": "readers",
    "open_split": "shards",
    "read_meta": "shards",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
