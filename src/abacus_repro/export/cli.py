"""`abacus-repro export verify GGUF --model DIR`: compare a GGUF with our model through llama.cpp."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="GGUF export checks")
    commands = export.add_subparsers(dest="export_command", required=True)
    verify = commands.add_parser(
        "verify", help="tokenization, logits and greedy generation of a GGUF against the Hugging Face model"
    )
    verify.add_argument("gguf", nargs="+", help="GGUF file(s) to check")
    verify.add_argument("--model", required=True, help="the Hugging Face model directory the GGUF came from")
    verify.add_argument("--out", default=None, help="write the report as JSON here (default: print it)")
    verify.add_argument(
        "--configfile",
        "--config",
        dest="config",
        default=None,
        help="a workflow config: its export.verify thresholds as the run resolves them (default config/config.yaml)",
    )
    verify.add_argument("--threads", type=int, default=2, help="llama.cpp and torch threads (default 2)")
    verify.add_argument("--min-top1", type=float, default=None, help="minimum top-1 agreement, for every file")
    verify.add_argument("--max-abs-diff", type=float, default=None, help="maximum |logit diff|, for every file")
    verify.add_argument("--prompt", action="append", default=None, help="a prompt to check (repeatable)")
    verify.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ..config import load_config
    from ..settings import ExportSettings
    from .verify import ExportVerificationError, verify_exports

    # The thresholds of the config as `snakemake --configfile` resolves it: the file plus the schema's defaults.
    settings = ExportSettings.model_validate(load_config(args.config)["export"]).verify
    if args.prompt:
        settings = settings.model_validate({**settings.model_dump(), "prompts": args.prompt})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "verify.json"
        try:
            verify_exports(
                args.gguf, args.model, out, settings, args.threads, thresholds=cli_thresholds(settings, args)
            )
            status = 0
        except ExportVerificationError as err:
            print(f"abacus-repro export verify: FAILED: {err}")
            status = 1
        report = json.loads(out.read_text(encoding="utf-8"))
    summary = {
        kind: {
            "tokenization_equal": r["tokenization_equal"],
            "top1_agreement": r["vs_hf"]["top1_agreement"],
            "top1_agreement_beyond_ties": r["vs_hf"]["top1_agreement_beyond_ties"],
            "max_abs_diff": r["vs_hf"]["max_abs_diff"],
            "greedy_equal": r["greedy_equal"],
            "greedy_equal_up_to_ties": r["greedy_equal_up_to_ties"],
            "fallbacks": r["fallbacks"],
            "passed": r["passed"],
        }
        for kind, r in report["files"].items()
    }
    print(json.dumps(summary if args.out else report, indent=2, ensure_ascii=False))
    return status


def cli_thresholds(settings, args: argparse.Namespace) -> dict:
    """Every file type's thresholds, with --min-top1 / --max-abs-diff (when given) put in for all of them."""
    from .verify import type_thresholds

    update = {"min_top1": args.min_top1, "max_abs_diff": args.max_abs_diff}
    update = {key: value for key, value in update.items() if value is not None}
    return {name: own.model_validate({**own.model_dump(), **update}) for name, own in type_thresholds(settings).items()}
