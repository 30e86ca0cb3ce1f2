"""Document corpora in Parquet or JSON Lines (plain, ``.gz``, ``.zst``), streamed into one document shard.

Paper-scale math is a corpus of documents, not generated problems: OpenWebMath (Parquet shards with ``text``,
``url``, ``date``, ``metadata``) and proof-pile-2's algebraic-stack (``.jsonl.zst`` shards with ``text`` and
``meta``). A corpus entry (:class:`CorpusSpec`, one item of ``math.corpus``) names its files (a file, a directory
or a glob of shards), their format (``auto``: from the suffix), the field that holds the text and, optionally, the
field that holds a source id and the fields copied into ``meta``.

Files are read in sorted order and streamed: Parquet a record batch at a time, JSON Lines a line at a time through
gzip or zstandard, and documents are written a row group at a time, so a multi-GB shard is never in memory. Every
record read is kept or dropped with a reason (read = kept + dropped); the first few dropped records of each reason
are named by file and line (or row) in the statistics and the log. A broken compressed stream, an unreadable
Parquet file, a file whose content does not match its compression suffix, or a text field the Parquet file does
not have is an :class:`InputError` naming the file, because it means a bad download or a wrong setting, not a bad
record.
"""

from __future__ import annotations

import glob
import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError, model_validator

from ..errors import InputError
from ..io import DOC_SCHEMA, Funnel, content_id, make_doc, merge_stats
from ..settings import CorpusSettings

log = logging.getLogger(__name__)

# Suffixes a format is recognised by (after a compression suffix is taken off).
FORMAT_SUFFIXES = {"parquet": (".parquet",), "jsonl": (".jsonl", ".json", ".ndjson")}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
# meta keys the reader sets itself; a copied source field may not overwrite them.
RESERVED_META = ("corpus", "origin", "record")
# Bytes read from a compressed file at a time, and Parquet rows per record batch: bounded memory per step.
READ_CHUNK_BYTES = 1 << 20
PARQUET_BATCH_ROWS = 1024
# Documents (or characters) per written row group: bounded memory while writing, same bytes on every run.
WRITE_GROUP_DOCS = 4096
WRITE_GROUP_CHARS = 64 << 20
# Dropped records named (file and line) per reason in stats.json and the log; the rest are only counted.
EXAMPLES_PER_REASON = 5


class CorpusSpec(CorpusSettings):
    """One corpus entry of the config (``math.corpus[i]``: abacus_repro.settings.CorpusSettings, where its
    defaults live) and the config key it came from, for messages."""

    where: str = "corpus"

    @model_validator(mode="after")
    def _meta_fields_not_reserved(self) -> CorpusSpec:
        clash = sorted(set(self.meta_fields) & set(RESERVED_META))
        if clash:
            raise ValueError(f"meta_fields {clash} are set by the reader; rename them")
        return self


def corpus_specs(entries: Sequence[CorpusSettings | Mapping[str, Any]], key: str) -> list[CorpusSpec]:
    """The config's corpus list (``key`` is its config key, e.g. ``math.corpus``) as specs with unique names."""
    if not entries:
        raise InputError(f"config {key}", "names no corpus: give at least one {name, path} entry")
    specs = [_corpus_spec(entry, f"{key}[{i}]") for i, entry in enumerate(entries)]
    names = [spec.name for spec in specs]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"config {key}", f"corpus names must be unique; repeated: {duplicated}")
    return specs


def _corpus_spec(entry: CorpusSettings | Mapping[str, Any], where: str) -> CorpusSpec:
    fields = entry.model_dump() if isinstance(entry, CorpusSettings) else dict(entry)
    try:
        return CorpusSpec.model_validate({**fields, "where": where})
    except ValidationError as err:
        raise InputError(f"config {where}", "; ".join(_problem(error) for error in err.errors())) from err


def _problem(error: Mapping[str, Any]) -> str:
    """One validation error as "key: what is wrong" (just what is wrong when it concerns the whole entry)."""
    key = ".".join(map(str, error["loc"]))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if key else message


# -- files -----------------------------------------------------------------------------------------------------
def split_suffixes(path: str | Path) -> tuple[str | None, str]:
    """(compression or None, the format suffix) of a file name: ``x.jsonl.zst`` -> ("zstd", ".jsonl")."""
    name = Path(path).name.lower()
    for suffix, compression in COMPRESSION_SUFFIXES.items():
        if name.endswith(suffix):
            return compression, Path(name[: -len(suffix)]).suffix
    return None, Path(name).suffix


def file_format(path: str | Path, configured: str) -> str:
    """The format a file is read as: the configured one, or (``auto``) the one its suffix names."""
    if configured != "auto":
        return configured
    _compression, suffix = split_suffixes(path)
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        if suffix in suffixes:
            return fmt
    raise InputError(
        path,
        "format auto cannot tell the format from the name (.parquet or .jsonl/.json/.ndjson, "
        "optionally .gz/.zst): set the corpus entry's format",
    )


def _is_corpus_file(path: str, configured: str) -> bool:
    _compression, suffix = split_suffixes(path)
    formats = FORMAT_SUFFIXES if configured == "auto" else {configured: FORMAT_SUFFIXES[configured]}
    return any(suffix in suffixes for suffixes in formats.values())


def _visible(path: str, root: str) -> bool:
    """Skips hidden files and folders (a download tool's .cache, partial files) inside a corpus directory."""
    return not any(part.startswith(".") for part in Path(os.path.relpath(path, root)).parts)


def corpus_files(path: str, key: str, configured_format: str) -> list[str]:
    """The files a corpus path names, sorted: the file itself, a directory's corpus files (recursively, hidden
    ones skipped), or a glob's matches. None found is an InputError naming the config key (``key``)."""
    if glob.has_magic(path):
        found = [p for p in glob.glob(path, recursive=True) if os.path.isfile(p)]
    elif os.path.isdir(path):
        found = [
            os.path.join(folder, name)
            for folder, _dirs, names in os.walk(path)
            for name in names
            if _visible(os.path.join(folder, name), path) and _is_corpus_file(name, configured_format)
        ]
    elif os.path.isfile(path):
        found = [path]
    else:
        raise InputError(f"config {key}", f"{path!r} is not a file, a directory or a glob that matches files")
    if not found:
        raise InputError(
            f"config {key}", f"{path!r} holds no corpus files (.parquet, .jsonl, .json, .ndjson, optionally .gz/.zst)"
        )
    return sorted(found)


# -- reading records -------------------------------------------------------------------------------------------
class _StreamError(Exception):
    """A compressed stream that cannot be read on; turned into an InputError that names the file and line."""


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            yield chunk


def _gzip_chunks(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                yield chunk
    except gzip.BadGzipFile as err:
        raise _StreamError(f"not gzip-compressed although named {path.suffix} ({err})") from err
    except EOFError as err:
        raise _StreamError("truncated gzip stream: the file ends before the end-of-stream marker") from err
    except zlib.error as err:
        raise _StreamError(f"corrupt gzip stream ({err})") from err


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    """Decompressed bytes of every zstd frame in turn (pzstd and some tools write several frames).

    One decompression object per frame, so a file that ends inside a frame is noticed: zstandard's stream reader
    would end quietly there, and a truncated download would pass as a shorter corpus.
    """
    import zstandard

    decompressor = zstandard.ZstdDecompressor()
    frame = decompressor.decompressobj()
    inside_frame = False
    with path.open("rb") as handle:
        while data := handle.read(READ_CHUNK_BYTES):
            while data:
                try:
                    out = frame.decompress(data)
                except zstandard.ZstdError as err:
                    what = (
                        "corrupt zstd stream" if inside_frame else f"not zstd-compressed although named {path.suffix}"
                    )
                    raise _StreamError(f"{what} ({err})") from err
                inside_frame = True
                if out:
                    yield out
                if not frame.eof:
                    break
                data = frame.unused_data
                frame = decompressor.decompressobj()
                inside_frame = False
    if inside_frame:
        raise _StreamError("truncated zstd stream: the file ends inside a frame")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a JSON Lines file, decompressed by its suffix; blank lines included."""
    compression, _suffix = split_suffixes(path)
    chunks = {"gzip": _gzip_chunks, "zstd": _zstd_chunks, None: _plain_chunks}[compression](path)
    lineno, pending = 0, []  # pieces of a line longer than a chunk, joined once (not re-copied per chunk)
    try:
        for chunk in chunks:
            *complete, rest = chunk.split(b"\n")
            if complete:
                complete[0] = b"".join([*pending, complete[0]])
                pending = []
            for line in complete:
                lineno += 1
                yield lineno, line
            pending.append(rest)
    except _StreamError as err:
        raise InputError(path, f"{err}; read {lineno} complete lines before it") from err
    except OSError as err:
        raise InputError(path, f"cannot be read ({err}); read {lineno} complete lines before it") from err
    if any(pending):
        yield lineno + 1, b"".join(pending)


@dataclass
class Record:
    """One record of a corpus file: its fields, or why it could not be parsed; ``number`` is its line (JSON
    Lines, from 1) or row (Parquet, from 1)."""

    path: Path
    number: int
    fields: dict | None = None
    reason: str | None = None
    detail: str = ""
    unit: str = "line"

    @property
    def location(self) -> str:
        return f"{self.path}:{self.number}" if self.unit == "line" else f"{self.path} row {self.number}"


def jsonl_records(path: Path) -> Iterator[Record]:
    for lineno, raw in _lines(path):
        if not raw.strip():
            continue  # a blank line (a trailing newline) is no record
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Record(path, lineno, reason="not_utf8", detail=f"invalid UTF-8 at byte {err.start}")
            continue
        try:
            fields = json.loads(line.lstrip("\ufeff") if lineno == 1 else line)
        except json.JSONDecodeError as err:
            yield Record(path, lineno, reason="bad_json", detail=f"{err.msg} at column {err.colno}")
            continue
        if not isinstance(fields, dict):
            yield Record(path, lineno, reason="not_an_object", detail=f"a JSON {type(fields).__name__}")
            continue
        yield Record(path, lineno, fields=fields)


def parquet_records(path: Path, spec: CorpusSpec) -> Iterator[Record]:
    """Rows of a Parquet file, one record batch at a time, only the columns the corpus entry uses."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise InputError(path, f"not a readable Parquet file ({err})") from err
    columns = parquet.schema_arrow.names
    for key, field in (("text_field", spec.text_field), ("id_field", spec.id_field)):
        if field is not None and field not in columns:
            raise InputError(path, f"has no column {field!r} ({spec.where}.{key}); its columns are {columns}")
    wanted = [name for name in dict.fromkeys([spec.text_field, spec.id_field, *spec.meta_fields]) if name in columns]
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            for fields in batch.to_pylist():
                row += 1
                yield Record(path, row, fields=fields, unit="row")
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable after row {row} ({err})") from err


def records(path: str | Path, spec: CorpusSpec) -> Iterator[Record]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "corpus file not found")
    if file_format(path, spec.format) == "parquet":
        return parquet_records(path, spec)
    return jsonl_records(path)


# -- records to documents --------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """A source field as JSON: dates, decimals and bytes become strings, containers are converted inside."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _is_utf8(text: str) -> bool:
    """False for lone surrogates (JSON's "\\ud800"): they cannot be written as UTF-8 Parquet strings."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_document(record: Record, spec: CorpusSpec, source: str) -> tuple[dict | None, str, str]:
    """(document, "", "") for a usable record, else (None, reason, detail)."""
    if record.reason:
        return None, record.reason, record.detail
    fields = record.fields or {}
    text = fields.get(spec.text_field)
    if text is None:
        return None, "missing_field", f"no {spec.text_field!r} field"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, "not_utf8", f"invalid UTF-8 at byte {err.start}"
    if not isinstance(text, str):
        return None, "text_not_string", f"{spec.text_field!r} is {type(text).__name__}, not a string"
    if not _is_utf8(text):
        return None, "not_utf8", "text holds a lone surrogate"
    if not text.strip():
        return None, "empty_text", ""
    if len(text) < spec.min_chars:
        return None, "too_short", f"{len(text)} < {spec.min_chars} characters"
    doc_id = content_id(source, text)  # the same text from two corpora is one document
    if spec.id_field is not None:
        raw_id = fields.get(spec.id_field)
        if raw_id is None or raw_id == "":
            return None, "missing_id", f"no {spec.id_field!r} field"
        doc_id = content_id(source, spec.name, str(raw_id))  # source ids are unique only within their corpus
    meta = {name: _jsonable(fields[name]) for name in spec.meta_fields if name in fields}
    meta.update(corpus=spec.name, origin=str(record.path), record=record.number)
    return make_doc(text, source, meta, id=doc_id), "", ""


class CorpusReader:
    """Streams the documents of several corpora (in config order, files sorted) and counts every record.

    ``files`` gives each corpus's paths as the rule's inputs list them (files, or a directory a rule made); without
    it each spec's path is used. Directories and globs among them are expanded here, sorted. A document whose id
    was seen before (the same text, or the same source id in one corpus) is dropped as a ``duplicate``, so ids are
    unique in the output.
    """

    def __init__(self, specs: Sequence[CorpusSpec], source: str, files: Sequence[Sequence[str]] | None = None):
        if files is not None and len(files) != len(specs):
            raise ValueError(f"{len(specs)} corpora but {len(files)} file lists")
        self.specs = list(specs)
        self.source = source
        given = files if files is not None else [[spec.path] for spec in self.specs]
        self.files = [
            [found for path in paths for found in corpus_files(str(path), f"{spec.where}.path", spec.format)]
            for spec, paths in zip(self.specs, given, strict=True)
        ]
        self.funnels = {spec.name: Funnel(f"{source}:{spec.name}") for spec in self.specs}
        self._seen: set[int] = set()
        self._finished = False

    def documents(self) -> Iterator[dict]:
        for spec, paths in zip(self.specs, self.files, strict=True):
            yield from self._corpus_documents(spec, paths)
        self._finished = True

    def _corpus_documents(self, spec: CorpusSpec, paths: Sequence[str]) -> Iterator[dict]:
        funnel = self.funnels[spec.name]
        examples: dict[str, list[str]] = {}
        chars = files_read = 0
        capped = None
        funnel.extra.update(files=len(paths), format=spec.format, text_field=spec.text_field, id_field=spec.id_field)
        for path in paths:
            if capped:
                break
            files_read += 1
            for record in records(path, spec):
                doc, reason, detail = to_document(record, spec, self.source)
                if doc is not None and int(doc["id"], 16) in self._seen:
                    doc, reason, detail = None, "duplicate", f"id {doc['id']} already kept"
                if doc is None:
                    funnel.drop(reason)
                    self._example(examples, reason, record, detail)
                    continue
                self._seen.add(int(doc["id"], 16))
                funnel.keep()
                chars += len(doc["text"])
                yield doc
                capped = self._cap_reached(spec, funnel.kept, chars)
                if capped:
                    log.info("%s: %s reached in %s; later records and files are not read", spec.name, capped, path)
                    break
        funnel.extra.update(files_read=files_read, chars_kept=chars, capped=capped, examples=examples)
        log.info(
            "%s: %d of %d records kept from %d files, dropped %s",
            spec.name,
            funnel.kept,
            funnel.read,
            files_read,
            dict(funnel.dropped),
        )

    @staticmethod
    def _cap_reached(spec: CorpusSpec, kept: int, chars: int) -> str | None:
        """Caps take documents in file order (the shards of OpenWebMath and proof-pile-2 are already shuffled)."""
        if spec.max_documents is not None and kept >= spec.max_documents:
            return "max_documents"
        if spec.max_chars is not None and chars >= spec.max_chars:
            return "max_chars"
        return None

    @staticmethod
    def _example(examples: dict[str, list[str]], reason: str, record: Record, detail: str) -> None:
        named = examples.setdefault(reason, [])
        if len(named) < EXAMPLES_PER_REASON:
            named.append(f"{record.location}: {detail}" if detail else record.location)
            log.warning("dropped (%s) %s %s", reason, record.location, detail)

    def stats(self) -> dict:
        """The merged funnel plus one funnel per corpus; only after :meth:`documents` has run to the end."""
        if not self._finished:
            raise RuntimeError("stats() before every document was read")
        per_corpus = {name: funnel.to_dict() for name, funnel in self.funnels.items()}
        empty = [name for name, stats in per_corpus.items() if stats["kept"] == 0]
        if empty:
            # Usually a wrong text_field on JSON Lines (Parquet refuses it up front): say so, not an empty mixture.
            keys = ", ".join(spec.where for spec in self.specs if spec.name in empty)
            details = {name: per_corpus[name]["dropped"] for name in empty}
            raise InputError(
                f"config {keys}", f"kept no document (dropped by reason: {details}); check text_field and the files"
            )
        merged = merge_stats(f"ingest_{self.source}", per_corpus.values())
        merged.update(source="corpus", corpora=per_corpus)
        return merged


# -- writing ---------------------------------------------------------------------------------------------------
def write_docs_streaming(path: str | Path, docs: Iterable[Mapping[str, Any]]) -> int:
    """Write documents as one Parquet file a row group at a time (io.write_docs's schema and options, so the
    same documents give the same bytes); returns the row count. Written even when empty."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    rows: list[dict] = []
    group_chars = written = 0
    try:
        with pq.ParquetWriter(
            tmp, DOC_SCHEMA, compression="zstd", use_dictionary=False, write_statistics=False
        ) as writer:
            for doc in docs:
                rows.append({name: doc.get(name) or "" for name in DOC_SCHEMA.names})
                group_chars += len(rows[-1]["text"])
                if len(rows) >= WRITE_GROUP_DOCS or group_chars >= WRITE_GROUP_CHARS:
                    writer.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
                    written += len(rows)
                    rows, group_chars = [], 0
            if rows or not written:
                writer.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
                written += len(rows)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return written


def ingest_corpora(
    specs: Sequence[CorpusSpec], out_path: str | Path, source: str, files: Sequence[Sequence[str]] | None = None
) -> dict:
    """Stream every corpus into ``out_path``; returns the statistics (merged and per corpus)."""
    reader = CorpusReader(specs, source, files)
    written = write_docs_streaming(out_path, reader.documents())
    stats = reader.stats()
    if written != stats["kept"]:
        raise AssertionError(f"wrote {written} documents but kept {stats['kept']}")
    return stats
