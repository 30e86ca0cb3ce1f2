"""`abacus-repro code check PATH...`: why would the workflow keep or drop this file?"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from ..errors import InputError


def register(subparsers) -> None:
    code = subparsers.add_parser("code", help="code cleaning: inspect the funnel's decision for files")
    code_sub = code.add_subparsers(dest="code_command", required=True)
    check = code_sub.add_parser(
        "check",
        help="print the cleaning decision for each file (or each .py under a directory) as JSON lines",
        description="One JSON line per file: {path, kept, reason, detail}, exactly as the workflow decides "
        "(duplicate detection aside, which needs the whole shard); a kept file in which redaction would replace "
        "something also gets redactions: [{kind, line, masked}] (the value masked, never printed whole).",
    )
    check.add_argument("paths", nargs="+", help="Python files or directories")
    check.add_argument(
        "--config",
        default=None,
        help="a workflow config whose `code:` section sets the thresholds (default: config/config.yaml)",
    )
    check.set_defaults(func=run_check)
    precision = code_sub.add_parser(
        "precision",
        help="per step-2 rule: false drops on maintained code and recall on data (labelled files)",
        description="Runs every data-dense and repetitive rule on its own over the labelled files "
        "(tests/data/step2_labels.yaml) and prints each rule's false-drop rate and recall.",
    )
    precision.add_argument("labels", help="labels file, e.g. tests/data/step2_labels.yaml")
    precision.add_argument("--config", default=None, help="a workflow config whose `code:` section sets thresholds")
    precision.set_defaults(func=run_precision)


def _settings(config_path: str | None):
    """The ``code:`` section of a workflow config (config/config.yaml when none is given) as CodeSettings, which
    fills the defaults a run would get. The file is validated as the workflow validates it, so a misspelt key or
    a value of the wrong type is an InputError naming the key."""
    from ..config import DEFAULT_CONFIGFILE, load_config
    from ..settings import CodeSettings

    return CodeSettings.model_validate(load_config(config_path or DEFAULT_CONFIGFILE)["code"])


def run_check(args: argparse.Namespace) -> int:
    from ..ingest.code import SKIP_REASONS, unresolvable_symlink
    from .pipeline import iter_check_paths

    for path in args.paths:
        if not Path(path).exists():
            raise InputError(path, unresolvable_symlink(path) or "no such file or directory")
    skipped: Counter[str] = Counter()
    checked = 0
    for decision in iter_check_paths(args.paths, _settings(args.config), skipped):
        print(json.dumps(decision, ensure_ascii=False), flush=True)
        checked += 1
    if not checked:
        print(f"abacus-repro: warning: {' '.join(args.paths)}: no Python files found", file=sys.stderr)
    if skipped:  # what the walk passed over is said, not lost: one line on stderr, the JSON lines stay clean
        counts = ", ".join(f"{skipped[reason]} {reason}" for reason in SKIP_REASONS if skipped[reason])
        print(f"abacus-repro: warning: not checked under {' '.join(args.paths)}: {counts}", file=sys.stderr)
    return 0


def run_precision(args: argparse.Namespace) -> int:
    from .precision import format_report, measure

    print(format_report(measure(args.labels, _settings(args.config))))
    return 0
