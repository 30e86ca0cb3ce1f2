"""Provenance: for every result, what produced it, from what, with which code, settings and software.

Snakemake records, per output file, the rule, its inputs, parameters and start/end times under
``.snakemake/metadata/``; this package joins that record with content hashes, a per-rule code fingerprint,
the git state, the package versions and the seeds (``manifest``), renders it for people (``report``), and
checks a run against it (``audit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .code import code_fingerprint, code_version
from .hashing import files_of, sha256_file
from .manifest import build_manifest, read_manifest, write_manifest
from .report import render_html, render_markdown

__all__ = [
    "build_manifest",
    "code_fingerprint",
    "code_version",
    "files_of",
    "read_manifest",
    "render_html",
    "render_markdown",
    "sha256_file",
    "write_manifest",
    "write_provenance",
]


def write_provenance(
    results_dir: Path,
    config: dict[str, Any],
    workdir: Path,
    manifest_path: Path,
    report_path: Path,
    *,
    html_path: Path | None = None,
    **manifest_options: Any,
) -> dict[str, Any]:
    """Build the manifest of the run in ``workdir`` and write it with its Markdown (and HTML) report."""
    manifest = build_manifest(results_dir, config, workdir, **manifest_options)
    write_manifest(manifest, manifest_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render_markdown(manifest))
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(manifest))
    return manifest
