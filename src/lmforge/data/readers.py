"""Corpus readers: plain text, JSON lines and Parquet, streamed one document at a time.

Every reader yields `Document(source, text)` and never holds more than one document (txt "file"
mode) or one record batch (Parquet) in memory. A file that cannot be read (missing, not UTF-8,
corrupt) is skipped and reported through the `ReadReport`, so a batch job keeps going; a bad line
in a JSON lines file skips that line only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TXT_MODES = ("file", "paragraph", "line")


@dataclass
class Document:
    source: str  # "path" or "path:line" / "path:row", for reports
    text: str


@dataclass
class ReadReport:
    """What the readers skipped, with reasons (printed in the prepare summary)."""

    files_read: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_records: int = 0  # bad JSON lines / records without a text field
    skipped_record_examples: list[tuple[str, str]] = field(default_factory=list)

    def skip_record(self, where: str, reason: str) -> None:
        self.skipped_records += 1
        if len(self.skipped_record_examples) < 20:
            self.skipped_record_examples.append((where, reason))


def file_format(path: Path) -> str:
    """'txt', 'jsonl' or 'parquet', from the file name (.gz is not supported)."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "txt"


def iter_documents(
    paths: Iterable[str | Path],
    *,
    text_field: str = "text",
    txt_mode: str = "file",
    report: ReadReport | None = None,
) -> Iterator[Document]:
    """Yield every document of every input file, skipping (and reporting) unreadable files."""
    if txt_mode not in TXT_MODES:
        raise ValueError(f"txt_mode must be one of {TXT_MODES}, got {txt_mode!r}")
    report = report if report is not None else ReadReport()
    for p in paths:
        path = Path(p)
        if not path.is_file():
            report.skipped_files.append(
                (str(path), "not found" if not path.exists() else "not a file")
            )
            continue
        fmt = file_format(path)
        reader = {"txt": _read_txt, "jsonl": _read_jsonl, "parquet": _read_parquet}[fmt]
        try:
            if fmt == "txt":
                yield from reader(path, txt_mode)
            else:
                yield from reader(path, text_field, report)
        except UnicodeDecodeError as exc:
            report.skipped_files.append((str(path), f"not valid UTF-8 (byte {exc.start})"))
            continue
        except _CorruptFile as exc:
            report.skipped_files.append((str(path), str(exc)))
            continue
        except OSError as exc:
            report.skipped_files.append((str(path), f"cannot read: {exc.strerror or exc}"))
            continue
        report.files_read += 1


class _CorruptFile(Exception):
    pass


def _read_txt(path: Path, mode: str) -> Iterator[Document]:
    if mode == "file":
        # Decode strictly before yielding anything, so a bad file contributes nothing.
        yield Document(str(path), path.read_bytes().decode("utf-8"))
        return
    # Streamed modes check the whole file's encoding first: a half-read file would otherwise
    # leave part of its documents in the shards while the file is reported as skipped.
    _check_utf8(path)
    with path.open("r", encoding="utf-8", newline=None) as f:
        if mode == "line":
            for i, line in enumerate(f, 1):
                if line.strip():
                    yield Document(f"{path}:{i}", line.rstrip("\n"))
            return
        buf: list[str] = []
        start = 1
        for i, line in enumerate(f, 1):
            if line.strip():
                if not buf:
                    start = i
                buf.append(line)
            elif buf:
                yield Document(f"{path}:{start}", "".join(buf).rstrip("\n"))
                buf = []
        if buf:
            yield Document(f"{path}:{start}", "".join(buf).rstrip("\n"))


def _check_utf8(path: Path, chunk: int = 1 << 24) -> None:
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")("strict")
    with path.open("rb") as f:
        while block := f.read(chunk):
            dec.decode(block)
        dec.decode(b"", final=True)


def _read_jsonl(path: Path, text_field: str, report: ReadReport) -> Iterator[Document]:
    _check_utf8(path)
    with path.open("r", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                report.skip_record(where, f"bad JSON ({exc.msg})")
                continue
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                report.skip_record(where, f"no string field {text_field!r}")
                continue
            yield Document(where, text)


def _read_parquet(path: Path, text_field: str, report: ReadReport) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is in the [data] extra
        raise _CorruptFile("reading Parquet needs pyarrow (pip install 'lmforge[data]')") from exc
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends for corrupt files
        raise _CorruptFile(f"not a readable Parquet file ({type(exc).__name__})") from exc
    if text_field not in pf.schema_arrow.names:
        raise _CorruptFile(
            f"no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)})"
        )
    row = 0
    try:
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                row += 1
                if not isinstance(text, str):
                    report.skip_record(f"{path}:{row}", f"{text_field!r} is not a string")
                    continue
                yield Document(f"{path}:{row}", text)
    except Exception as exc:
        if isinstance(exc, GeneratorExit):
            raise
        raise _CorruptFile(f"corrupt Parquet data after row {row} ({type(exc).__name__})") from exc
