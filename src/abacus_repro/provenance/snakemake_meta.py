"""Snakemake's own record of each output, read from ``.snakemake/metadata/`` (no Snakemake import).

Snakemake writes one JSON file per output, named by the urlsafe base64 of the output's path, holding the rule,
its inputs, the ``repr`` of each parameter (sorted; names are not kept), start and end times, the log files,
the conda environment file's content, the cluster job id and the sha256 of every input up to
``--max-checksum-file-size`` (record format 6, Snakemake 8 and 9).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

METADATA_DIR = Path(".snakemake") / "metadata"


def record_name(path: str | Path) -> str:
    return base64.urlsafe_b64encode(str(path).encode()).decode()


def path_of_record(name: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(name.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def read_record(path: str | Path, workdir: Path) -> dict[str, Any] | None:
    """The record for one output path (relative to the run directory), or None if Snakemake has none."""
    record_path = workdir / METADATA_DIR / record_name(path)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def recorded_outputs(workdir: Path) -> list[str]:
    """Every output path Snakemake has a record for in this run directory (existing or not), sorted."""
    meta = workdir / METADATA_DIR
    if not meta.is_dir():
        return []
    paths = (path_of_record(p.name) for p in meta.iterdir() if p.is_file())
    return sorted(p for p in paths if p)


def recorded_input_sha256(record: dict[str, Any], input_path: str) -> str | None:
    """The input's sha256 as Snakemake saw it when the job finished ("sha256:<hex>" in the record)."""
    value = (record.get("input_checksums") or {}).get(input_path)
    if isinstance(value, str) and value.startswith("sha256:"):
        return value.removeprefix("sha256:")
    return None


def conda_env_text(record: dict[str, Any]) -> str | None:
    encoded = record.get("conda_env")
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
