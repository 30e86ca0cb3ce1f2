"""Document shards, dropped records and funnel statistics: the contract between stages (DESIGN.md).

A document shard is a Parquet file with columns ``id`` (stable, from content or source id), ``text``,
``source`` and ``meta`` (a JSON string). Dropped records carry the same columns plus ``reason`` and
``detail``. Every filter writes ``stats.json`` with ``read``, ``kept`` and ``dropped`` by reason, and
``read == kept + sum(dropped)`` is checked before it is written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError

DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("meta", pa.string()),
    ]
)
DROPPED_SCHEMA = pa.schema(list(DOC_SCHEMA) + [("reason", pa.string()), ("detail", pa.string())])


def content_id(*parts: str) -> str:
    """A stable id from content (or a source id): the first 16 hex digits of sha256."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex (read in chunks by the standard library, so any size is fine)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def make_doc(text: str, source: str, meta: Mapping[str, Any] | None = None, id: str | None = None) -> dict:
    """One document record; ``meta`` is serialised with sorted keys so outputs are byte-identical."""
    return {
        "id": id if id is not None else content_id(source, text),
        "text": text,
        "source": source,
        "meta": json.dumps(dict(meta or {}), sort_keys=True, ensure_ascii=False),
    }


def doc_meta(doc: Mapping[str, Any]) -> dict:
    return json.loads(doc["meta"]) if doc.get("meta") else {}


def write_docs(path: str | Path, docs: Iterable[Mapping[str, Any]], dropped: bool = False) -> int:
    """Write documents (or dropped records) as one Parquet file; returns the row count.

    Written even when empty, with the full schema, so downstream readers never guess.
    """
    schema = DROPPED_SCHEMA if dropped else DOC_SCHEMA
    rows = [{name: (doc.get(name) if doc.get(name) is not None else "") for name in schema.names} for doc in docs]
    table = pa.Table.from_pylist(rows, schema=schema)
    write_table(path, table)
    return table.num_rows


def write_table(path: str | Path, table: pa.Table) -> None:
    """Any Arrow table as one Parquet file, written whole then renamed (a killed job leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    # No statistics timestamps or dictionary surprises: same rows -> same bytes.
    pq.write_table(table, tmp, compression="zstd", use_dictionary=False, write_statistics=False)
    os.replace(tmp, path)


def read_docs(path: str | Path, columns: list[str] | None = None) -> list[dict]:
    """Read a shard as a list of dicts; a missing or corrupt file is an InputError naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "document shard not found")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(path, f"not a readable Parquet document shard ({err})") from err
    missing = {"id", "text"} - set(table.column_names)
    if columns is None and missing:
        raise InputError(path, f"document shard lacks columns {sorted(missing)}")
    return table.to_pylist()


def path_list(value: str | Path | Iterable[str | Path]) -> list[str]:
    """A rule's named input or output as a list of paths (a name that holds one file arrives as a plain string)."""
    return [str(value)] if isinstance(value, str | bytes | os.PathLike) else [str(v) for v in value]


def read_many(paths: Iterable[str | Path]) -> list[dict]:
    docs: list[dict] = []
    for path in paths:
        docs.extend(read_docs(path))
    return docs


class Funnel:
    """Counts for one filter: every record read is either kept or dropped with a reason.

    With ``count_bytes`` the same account is kept in bytes (``read_bytes == kept_bytes + sum(dropped_bytes)``) and
    written next to the counts; without it the stats are exactly as before bytes were counted.
    """

    def __init__(self, name: str, count_bytes: bool = False):
        self.name = name
        self.read = 0
        self.kept = 0
        self.dropped: Counter[str] = Counter()
        self.count_bytes = count_bytes
        self.read_bytes = 0
        self.kept_bytes = 0
        self.dropped_bytes: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}

    def keep(self, n: int = 1, nbytes: int = 0) -> None:
        self.read += n
        self.kept += n
        self.read_bytes += nbytes
        self.kept_bytes += nbytes

    def drop(self, reason: str, n: int = 1, nbytes: int = 0) -> None:
        self.read += n
        self.dropped[reason] += n
        self.read_bytes += nbytes
        self.dropped_bytes[reason] += nbytes

    def drop_kept(self, reason: str, n: int = 1, nbytes: int = 0) -> None:
        """Records an earlier job counted as kept, dropped by a later step (read stays the same)."""
        self.kept -= n
        self.dropped[reason] += n
        self.kept_bytes -= nbytes
        self.dropped_bytes[reason] += nbytes

    def check(self) -> None:
        total = self.kept + sum(self.dropped.values())
        if total != self.read:
            raise AssertionError(f"{self.name}: read {self.read} != kept {self.kept} + dropped {total - self.kept}")
        total_bytes = self.kept_bytes + sum(self.dropped_bytes.values())
        if self.count_bytes and total_bytes != self.read_bytes:
            raise AssertionError(
                f"{self.name}: read {self.read_bytes} bytes != kept {self.kept_bytes} + dropped "
                f"{total_bytes - self.kept_bytes} bytes"
            )

    def to_dict(self) -> dict:
        self.check()
        out = {
            "name": self.name,
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
        }
        if self.count_bytes:
            out.update(
                read_bytes=self.read_bytes,
                kept_bytes=self.kept_bytes,
                dropped_bytes=dict(sorted(self.dropped_bytes.items())),
            )
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, stats: Mapping[str, Any]) -> Funnel:
        """The funnel a job wrote (``to_dict``), to be carried on by a later job; its counts must add up."""
        funnel = cls(stats["name"], count_bytes="read_bytes" in stats)
        funnel.read, funnel.kept = stats["read"], stats["kept"]
        funnel.dropped.update(stats.get("dropped", {}))
        if funnel.count_bytes:
            funnel.read_bytes, funnel.kept_bytes = stats["read_bytes"], stats["kept_bytes"]
            funnel.dropped_bytes.update(stats.get("dropped_bytes", {}))
        counted = {"name", "read", "kept", "dropped", "read_bytes", "kept_bytes", "dropped_bytes"}
        funnel.extra = {key: value for key, value in stats.items() if key not in counted}
        funnel.check()
        return funnel


def merge_stats(name: str, parts: Iterable[Mapping[str, Any]]) -> dict:
    """Sum per-shard funnels into one (bytes too when every part counts them); refuses any part whose counts do
    not add up."""
    parts = list(parts)
    funnel = Funnel(name, count_bytes=bool(parts) and all("read_bytes" in part for part in parts))
    for part in parts:
        dropped = part.get("dropped", {})
        if part["read"] != part["kept"] + sum(dropped.values()):
            raise AssertionError(f"{part.get('name', name)}: counts do not add up: {part}")
        funnel.read += part["read"]
        funnel.kept += part["kept"]
        funnel.dropped.update(dropped)
        if funnel.count_bytes:
            funnel.read_bytes += part["read_bytes"]
            funnel.kept_bytes += part["kept_bytes"]
            funnel.dropped_bytes.update(part.get("dropped_bytes", {}))
    return funnel.to_dict()


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(path, "file not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not valid JSON ({err})") from err


def read_jsonl(path: str | Path) -> list[dict]:
    """Read JSON lines; a broken line, a broken gzip stream or bad UTF-8 is an InputError naming the file."""
    path = Path(path)
    rows = []
    lineno = 0
    try:
        with _open_maybe_gzip(path) as handle:
            for lineno, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    rows.append(json.loads(raw))
                except json.JSONDecodeError as err:
                    raise InputError(path, f"line {lineno} is not valid JSON ({err.msg})") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(path, _gzip_problem(err, lineno)) from err
    except OSError as err:  # a directory, no permission, ... (after BadGzipFile, which is an OSError too)
        raise InputError(path, f"cannot be read ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise InputError(path, f"line {lineno + 1} is not UTF-8 text ({err.reason})") from err
    return rows


def _gzip_problem(err: Exception, lines_read: int) -> str:
    """What is wrong with a `.gz` file, in words: the gzip module's exceptions name neither the file nor the cause."""
    if isinstance(err, EOFError):
        return f"truncated gzip file: the stream ends after {lines_read} lines (an interrupted download or copy?)"
    if isinstance(err, gzip.BadGzipFile) and "Not a gzipped file" in str(err):
        return "not a gzip file, though its name ends in .gz (rename it without .gz if it is plain JSON lines)"
    return f"corrupt gzip file after {lines_read} lines ({err})"


def _open_maybe_gzip(path: Path):
    if not path.exists():
        raise InputError(path, "file not found")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")
