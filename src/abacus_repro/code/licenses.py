"""Licence filtering and per-licence accounting for code files (issue 17, item 4).

A file's licences are what its dump says (ingest puts them in meta, see ``ingest.code.stack_licenses``): the SPDX
ids in ``meta["licenses"]``; when that list is empty, the dump's classification ``meta["license_type"]`` (The
Stack v2's "no_license"); when the dump has no licence field at all, and for ``repos_dir`` and
``python_installation`` (no licence is read from disk), ``unknown``.

``code.licenses.allow`` (null: every file is kept) keeps a file when ANY of its licences, or its ``license_type``,
is in the list: a file under "MIT OR GPL-3.0" may be used under MIT. So ``allow: [permissive]`` keeps exactly the
files The Stack v2 classifies as permissive, and a file without licence information is kept only when
``unknown`` is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

UNKNOWN = "unknown"
LICENSE_TABLE_FIELDS = ("files", "bytes", "kept_files", "kept_bytes")


def file_licenses(meta: Mapping[str, Any]) -> list[str]:
    """The licences a file is counted under: its SPDX ids, else its licence type, else ``unknown``."""
    ids = meta.get("licenses") or []
    if ids:
        return [str(i) for i in ids]
    kind = meta.get("license_type")
    return [str(kind)] if kind else [UNKNOWN]


def license_drop_detail(meta: Mapping[str, Any], allow: list[str] | None) -> str | None:
    """Why the allow-list drops this file (naming its licences), or None when it is kept."""
    if allow is None:
        return None
    licenses = file_licenses(meta)
    kind = meta.get("license_type")
    if set(licenses) & set(allow) or (kind and kind in allow):
        return None
    described = ", ".join(licenses) + (f" (license_type {kind})" if kind and kind not in licenses else "")
    return f"licences {described}: none in code.licenses.allow"


def license_table(files: Iterable[tuple[Mapping[str, Any], int, bool]]) -> dict[str, dict[str, int]]:
    """Per licence: files and bytes read, files and bytes kept, from (meta, bytes, kept) per file. A file under
    several licences counts under each, so a column may add up to more than the files read."""
    table: dict[str, dict[str, int]] = {}
    for meta, size, kept in files:
        for name in file_licenses(meta):
            row = table.setdefault(name, dict.fromkeys(LICENSE_TABLE_FIELDS, 0))
            row["files"] += 1
            row["bytes"] += size
            if kept:
                row["kept_files"] += 1
                row["kept_bytes"] += size
    return dict(sorted(table.items()))


def merge_license_tables(tables: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """The shards' licence tables summed, sorted by bytes read (largest first), then by name."""
    merged: dict[str, dict[str, int]] = {}
    for table in tables:
        for name, row in table.items():
            into = merged.setdefault(name, dict.fromkeys(LICENSE_TABLE_FIELDS, 0))
            for key in LICENSE_TABLE_FIELDS:
                into[key] += int(row.get(key, 0))
    return dict(sorted(merged.items(), key=lambda item: (-item[1]["bytes"], item[0])))
