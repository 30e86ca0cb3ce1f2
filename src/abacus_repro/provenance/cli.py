"""`abacus-repro provenance` writes a finished run's manifest and report; `abacus-repro audit` checks a run
against its manifest (and, with ``--rerun``, re-executes the deterministic data rules and compares bytes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from ..errors import InputError
from . import write_provenance
from .audit import audit_run, compare_manifests, format_result, rerun_data_rules
from .manifest import read_manifest

REPO_DIR = Path(__file__).resolve().parents[3]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provenance", help="write results/provenance/manifest.json, report.md and report.html for a finished run"
    )
    parser.add_argument("--directory", default=".", help="the run directory (where .snakemake/ and results/ are)")
    parser.add_argument("--results", default="results", help="results directory, relative to --directory")
    parser.add_argument(
        "--config",
        default=None,
        help="the run's configuration (default: the config recorded in the existing manifest, else config/config.yaml)",
    )
    parser.add_argument("--out", default=None, help="output directory (default: <results>/provenance)")
    parser.set_defaults(func=run_provenance)

    audit = subparsers.add_parser(
        "audit",
        help="check every output against the provenance manifest; exit 1 when "
        "an output was modified, is missing or did not reproduce",
    )
    audit.add_argument("--directory", default=".", help="the run directory")
    audit.add_argument("--manifest", default=None, help="default: <directory>/results/provenance/manifest.json")
    audit.add_argument("--config", default=None, help="also name configuration keys that differ from the run's")
    audit.add_argument(
        "--rerun",
        action="store_true",
        help="re-execute the deterministic data rules into a scratch directory and compare bytes",
    )
    audit.add_argument("--rules", nargs="+", default=None, help="with --rerun: these rules instead of the data rules")
    audit.add_argument(
        "--scratch",
        default=None,
        help="with --rerun: scratch directory (default: a new temporary one, removed when everything reproduced)",
    )
    audit.add_argument("--keep", action="store_true", help="with --rerun: keep the scratch directory")
    audit.add_argument("--snakefile", default=None, help="with --rerun: the workflow (default: the run's)")
    audit.add_argument("--cores", type=int, default=2, help="with --rerun: cores for Snakemake")
    audit.add_argument(
        "--compare",
        default=None,
        metavar="MANIFEST",
        help="also compare output hashes with another run's manifest (two runs of one config)",
    )
    audit.add_argument(
        "--strict",
        action="store_true",
        help="also fail on explained drift (re-run with changed code, params or inputs; stale or unrecorded outputs)",
    )
    audit.add_argument("--verbose", action="store_true", help="list matching outputs too")
    audit.add_argument("--json", default=None, help="also write the findings as JSON to this file")
    audit.set_defaults(func=run_audit)


def _load_config(path: str | None, workdir: Path, manifest_path: Path) -> dict:
    if path is not None:
        return yaml.safe_load(Path(path).read_text()) or {}
    if manifest_path.is_file():
        return read_manifest(manifest_path).get("config", {})
    default = workdir / "config/config.yaml"
    if not default.is_file():
        raise InputError(default, "no configuration given and none found (pass --config)")
    return yaml.safe_load(default.read_text()) or {}


def run_provenance(args: argparse.Namespace) -> int:
    workdir = Path(args.directory).resolve()
    out = Path(args.out) if args.out else workdir / args.results / "provenance"
    config = _load_config(args.config, workdir, out / "manifest.json")
    manifest = write_provenance(
        Path(args.results),
        config,
        workdir,
        out / "manifest.json",
        out / "report.md",
        html_path=out / "report.html",
        repo_dir=REPO_DIR,
    )
    print(f"{len(manifest['outputs'])} outputs described in {out / 'manifest.json'} (report: {out / 'report.html'})")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    workdir = Path(args.directory).resolve()
    manifest_path = Path(args.manifest) if args.manifest else workdir / "results/provenance/manifest.json"
    manifest = read_manifest(manifest_path)
    current = yaml.safe_load(Path(args.config).read_text()) if args.config else None
    result = audit_run(workdir, manifest, repo_dir=REPO_DIR, current_config=current)
    print(format_result(result, verbose=args.verbose))
    payload = {"audit": result.to_json()}
    code = result.exit_code(strict=args.strict)
    if args.rerun:
        rerun = rerun_data_rules(
            workdir,
            manifest,
            scratch=Path(args.scratch) if args.scratch else None,
            snakefile=Path(args.snakefile) if args.snakefile else None,
            rules=args.rules,
            cores=args.cores,
            keep=args.keep,
        )
        print("\n== re-execution")
        print(format_result(rerun, verbose=args.verbose))
        payload["rerun"] = rerun.to_json()
        code = max(code, rerun.exit_code())
    if args.compare:
        compared = compare_manifests(manifest, read_manifest(Path(args.compare)))
        print("\n== comparison with", args.compare)
        print(format_result(compared, verbose=args.verbose))
        payload["compare"] = compared.to_json()
        code = max(code, compared.exit_code(strict=args.strict))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return code
