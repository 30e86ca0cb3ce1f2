"""Each job's own record of itself: what it read, wrote and was given, where and when it ran.

Every rule script goes through :func:`abacus_repro.rules.run_rule`, which writes one JSON record per finished job
under ``logs/jobs/<rule>/`` in the run directory (named by the job's wildcards, so a re-run replaces it). The
provenance manifest and the audit read these records, never Snakemake's internal ``.snakemake/`` files: the
record is ours, its format is :data:`FORMAT`, and a job on a cluster node writes it to the shared run directory
like its outputs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .io import sha256_file

FORMAT = "abacus-repro-job/1"
RECORDS_DIR = Path("logs") / "jobs"
# Inputs up to this size are hashed when the job ends, so a later change to one is seen as a stale output;
# larger ones (raw dumps, checkpoints) are hashed by the manifest when it is written, not by every job.
CHECKSUM_MAX_BYTES = 64 * 1024 * 1024


def record_path(rule: str, wildcards: Mapping[str, str], workdir: Path = Path()) -> Path:
    # An empty wildcard (the main run's {exp}) is left out, so the main run's records keep their names.
    name = ",".join(f"{key}={value}" for key, value in sorted(wildcards.items()) if value != "") or "job"
    return workdir / RECORDS_DIR / rule / (re.sub(r"[^A-Za-z0-9=,._-]", "_", name) + ".json")


def _paths(named: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for value in named.values():
        found.extend([value] if isinstance(value, str) else list(value))
    return found


def input_checksums(inputs: Iterable[str], limit: int = CHECKSUM_MAX_BYTES) -> dict[str, str]:
    checksums = {}
    for path in inputs:
        file = Path(path)
        if file.is_file() and file.stat().st_size <= limit:
            checksums[path] = "sha256:" + sha256_file(file)
    return checksums


def job_record(
    rule: str,
    paths: Any,
    params: Mapping[str, Any],
    start: float,
    end: float,
) -> dict[str, Any]:
    """The record of a finished job; ``paths`` is its :class:`abacus_repro.rules.RulePaths`."""
    inputs = _paths(paths.input)
    return {
        "format": FORMAT,
        "rule": rule,
        "wildcards": dict(paths.wildcards),
        "input": inputs,
        "output": _paths(paths.output),
        "log": _paths(paths.log),
        "params": json.loads(json.dumps(dict(params), default=str, sort_keys=True)),
        "threads": paths.threads,
        "starttime": start,
        "endtime": end,
        "host": socket.gethostname(),
        "external_jobid": os.environ.get("SLURM_JOB_ID"),
        "python": sys.executable,
        "conda_prefix": os.environ.get("CONDA_PREFIX"),
        "input_checksums": input_checksums(inputs),
    }


def write_job_record(record: Mapping[str, Any], workdir: Path = Path()) -> Path:
    path = record_path(record["rule"], record["wildcards"], workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


class JobRecords:
    """The records of a run directory, looked up by output path (the newest job that wrote it)."""

    def __init__(self, workdir: Path):
        self.by_output: dict[str, dict[str, Any]] = {}
        for file in sorted((workdir / RECORDS_DIR).glob("*/*.json")):
            try:
                record = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                continue
            for output in record.get("output") or []:
                if Path(output).is_absolute() and not Path(output).is_relative_to(workdir.resolve()):
                    continue  # another directory's job (a script run by hand from here): not this run's output
                known = self.by_output.get(output)
                if known is None or (record.get("endtime") or 0) >= (known.get("endtime") or 0):
                    self.by_output[output] = record

    def of(self, path: str) -> dict[str, Any] | None:
        return self.by_output.get(str(path))

    def outputs(self) -> list[str]:
        return sorted(self.by_output)


def recorded_input_sha256(record: Mapping[str, Any], input_path: str) -> str | None:
    """The input's sha256 when the job ended, if it was small enough to be hashed then."""
    value = (record.get("input_checksums") or {}).get(input_path)
    return value.removeprefix("sha256:") if isinstance(value, str) and value.startswith("sha256:") else None
