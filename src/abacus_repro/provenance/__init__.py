"""Provenance: for every result, what produced it, from what, with which code, settings and software.

Every job records its rule, inputs, outputs, parameters, host and start/end times under ``logs/jobs/``
(``abacus_repro.job_record``, written by ``abacus_repro.rules.run_rule``); this package joins those records with content
hashes, a per-rule code fingerprint,
the git state, the package versions and the seeds (``manifest``), renders it for people (``report``), and
checks a run against it (``audit``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..rules import RulePaths
from ..settings import Settings
from .code import code_fingerprint, code_version
from .hashing import files_of, sha256_file
from .manifest import build_manifest, read_manifest, write_manifest
from .report import render_html, render_markdown

log = logging.getLogger(__name__)

__all__ = [
    "ProvenanceJob",
    "build_manifest",
    "code_fingerprint",
    "code_version",
    "files_of",
    "provenance_rule",
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


class ProvenanceJob(Settings):
    """What the provenance rule is given: the run's resolved config, each rule's code and params, the workflow."""

    config: dict[str, Any]
    rules: dict[str, Any]
    snakefile: str
    repo_dir: str


def provenance_rule(settings: ProvenanceJob, paths: RulePaths) -> dict[str, Any]:
    """Rule provenance: the manifest and its reports for every result under results/ of this run directory."""
    manifest = write_provenance(
        Path("results"),
        settings.config,
        Path.cwd(),
        Path(paths.output["manifest"]),
        Path(paths.output["report"]),
        html_path=Path(paths.output["html"]),
        rules=settings.rules,
        repo_dir=Path(settings.repo_dir),
        snakefile=settings.snakefile,
    )
    stale = [o["path"] for o in manifest["outputs"] if o["inputs_changed_since_run"]]
    log.info(
        "described %d outputs of %d rules; code %s", len(manifest["outputs"]), len(manifest["rules"]), manifest["code"]
    )
    if stale:
        log.warning("outputs whose inputs changed after they were made: %s", stale)
    return manifest
