"""The comparison of recipe variants (rule experiments_compare): comparison.md, comparison.json and curves.png.

Each run of a variant (one per seed in ``experiments.seeds``) is read from three places: each phase's
metrics.jsonl (the loss on each source's held-out validation split, abacus_repro.mixture.validation, which is the
same rows for every variant and seed), the run's evaluation summary.json, and the Snakemake benchmark .tsv files of
the jobs the run re-ran itself (its cost; jobs it shares with the main run are not counted). The runs of a variant
are aggregated over seeds (n, mean, sample standard deviation, min, max), and every variant after the first is
set against the first. JSON and markdown are byte-identical for the same inputs (sorted keys, floats rounded to
``DECIMALS``); the plot need not be.

At the scale this workflow runs on a workstation these are evidence that the machinery works, not evidence for or
against the paper's claims: the markdown and the report caption say so.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import read_json, read_jsonl, write_json
from ..rules import RulePaths
from ..settings import VALIDATION_SOURCES, Settings
from .metrics import source_curves

DECIMALS = 4
# How each phase's table is titled (in training order): anneal ends pretraining, sft ends the recipe.
PHASE_TITLES = {
    "base": "after the base phase",
    "cosine": "after the cosine phase",
    "anneal": "after pretraining (anneal)",
    "sft": "after SFT",
}
SCALE_NOTE = (
    "Tiny-scale numbers: a handful of seeds of a small model trained for few steps on a small corpus. They show "
    "that the comparison machinery works; they are not evidence for or against the paper's claims."
)
READING_NOTE = (
    "Validation loss (nats/token) is each source's held-out split, the same rows for every variant and seed, "
    "scored by the final model of each phase; the spread (± sample standard deviation, n runs) is over training "
    "seeds. A difference is called beyond spread when it exceeds the sum of the two variants' standard "
    "deviations — a rough screen, not a significance test."
)
COST_NOTE = (
    "From the Snakemake benchmark files of the jobs each run re-ran itself. Jobs a variant shares with the main "
    "run (it reuses their outputs) are not counted in its cost; a run with no benchmark directory re-ran "
    "nothing (0 jobs, 0 s). Seconds are summed over seeds; memory is the largest peak resident set of any job."
)
# The benchmark .tsv columns the cost reads (Snakemake writes them; "NA" or "-" where a system cannot measure).
WALL_COLUMN, CPU_COLUMN, RSS_COLUMN = "s", "cpu_time", "max_rss"


class ComparedRun(Settings):
    name: str
    variant: str
    seed: int | None
    overrides: dict[str, Any]
    metrics: dict[str, str]
    eval_summary: str | None
    eval_model: str
    benchmarks: str


class CompareJob(Settings):
    runs: list[ComparedRun]


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one run: its optimizer steps, each source's validation curve and its final loss."""

    steps: int
    curves: dict[str, tuple[list[int], list[float]]]
    final: dict[str, float | None]


@dataclass(frozen=True)
class RunResult:
    run: ComparedRun
    phases: dict[str, PhaseResult]
    evaluation: dict[str, dict] | None
    cost: dict[str, Any]
    benchmark_order: list[str] = field(default_factory=list)


# --- reading -----------------------------------------------------------------------------------------------------


def read_phase(path: str | Path) -> PhaseResult:
    """A phase's metrics.jsonl as its step count, per-source validation curves and per-source final loss."""
    if not Path(path).is_file():
        raise InputError(path, "metrics file not found (the phase's training job has not written it)")
    history = read_jsonl(path)
    try:
        by_source = source_curves(history)
    except (KeyError, TypeError) as err:
        raise InputError(path, f"a metrics line lacks its kind, step or loss ({err!r})") from err
    curves = {source: _last_per_step(steps, losses) for source, (steps, losses) in by_source.items()}
    if not curves:
        raise InputError(
            path,
            "no per-source validation lines (kind 'validation' with a 'source'): it was written by a training run "
            "that did not score the validation split; rerun the phase",
        )
    final = {source: _finite(_last_source_loss(history, source)) for source in curves}
    return PhaseResult(steps=phase_steps(history), curves=curves, final=final)


def _last_per_step(steps: list[int], losses: list[float]) -> tuple[list[int], list[float | None]]:
    """One point per step, the last one written (a resumed run may repeat a step), in step order; a loss that is
    not a finite number (a diverged run) stays as a gap."""
    by_step = dict(zip(steps, losses, strict=True))
    ordered = sorted(by_step)
    return ordered, [_finite(by_step[step]) for step in ordered]


def _last_source_loss(history: list[dict], source: str) -> Any:
    """The loss of the phase's last validation line of ``source`` (the score of the phase's final model)."""
    lines = [r for r in history if r.get("kind") == "validation" and r.get("source") == source]
    return lines[-1]["loss"]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def phase_steps(history: list[dict]) -> int:
    """The phase's optimizer steps: its summary line's, else the last training step logged (an unfinished log)."""
    summaries = [r for r in history if r.get("kind") == "summary" and "steps" in r]
    if summaries:
        return int(summaries[-1]["steps"])
    steps = [r["step"] for r in history if r.get("kind") in ("train", "validation") and "step" in r]
    return int(max(steps, default=0))


def read_evaluation(summary_path: str | Path, model: str) -> tuple[dict[str, dict], list[str]]:
    """{benchmark: {"score", "status"}} of ``model`` in an eval summary.json, and its benchmarks in file order."""
    summary = read_json(summary_path)
    if not isinstance(summary, dict) or model not in summary:
        present = sorted(summary) if isinstance(summary, dict) else []
        raise InputError(summary_path, f"no results for model {model!r} (models in the summary: {present})")
    entries = summary[model]
    if not isinstance(entries, dict):
        raise InputError(summary_path, f"the results of model {model!r} are not a mapping of benchmark -> result")
    evaluation = {}
    for benchmark, entry in entries.items():
        status = entry.get("status", "missing") if isinstance(entry, dict) else "missing"
        score = _round(_finite(entry.get("score"))) if isinstance(entry, dict) and status == "ok" else None
        evaluation[benchmark] = {"score": score, "status": status if score is not None else _not_ok(status)}
    return evaluation, list(entries)


def _not_ok(status: str) -> str:
    # An "ok" entry without a usable score is not a result either.
    return "no score" if status == "ok" else status


def read_cost(directory: str | Path) -> dict[str, Any]:
    """What the jobs in a run's benchmark directory cost: jobs, wall and CPU seconds (summed over the .tsv files'
    rows, one row per repeat), peak resident memory (MB). No directory: the run re-ran nothing. Values a system
    could not measure ("NA", "-") are counted in ``unmeasured`` and left out of the sums."""
    files = sorted(Path(directory).glob("*.tsv")) if Path(directory).is_dir() else []
    rows = [row for path in files for row in _benchmark_rows(path)]
    wall = [_number(row.get(WALL_COLUMN)) for row in rows]
    cpu = [_number(row.get(CPU_COLUMN)) for row in rows]
    rss = [_number(row.get(RSS_COLUMN)) for row in rows]
    measured_rss = [value for value in rss if value is not None]
    return {
        "jobs": len(files),
        "wall_seconds": _round(sum((v for v in wall if v is not None), 0.0)),
        "cpu_seconds": _round(sum((v for v in cpu if v is not None), 0.0)),
        "max_rss_mb": _round(max(measured_rss)) if measured_rss else None,
        "unmeasured": sum(value is None for value in wall + cpu + rss),
    }


def _benchmark_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or WALL_COLUMN not in reader.fieldnames:
            raise InputError(path, f"not a Snakemake benchmark file (no header with a {WALL_COLUMN!r} column)")
        return list(reader)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_run(run: ComparedRun) -> RunResult:
    phases = {phase: read_phase(path) for phase, path in run.metrics.items()}
    evaluation, order = read_evaluation(run.eval_summary, run.eval_model) if run.eval_summary else (None, [])
    return RunResult(
        run=run, phases=phases, evaluation=evaluation, cost=read_cost(run.benchmarks), benchmark_order=order
    )


# --- aggregation -------------------------------------------------------------------------------------------------


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DECIMALS)


def summarize(values: Iterable[float | None]) -> dict[str, Any]:
    """n, mean, sample standard deviation (ddof=1; None for one value), min and max of the finite values."""
    values = [value for value in values if value is not None]
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": _round(statistics.fmean(values)),
        "std": _round(statistics.stdev(values)) if len(values) > 1 else None,
        "min": _round(min(values)),
        "max": _round(max(values)),
    }


def _ordered_union(groups: Iterable[Iterable[str]], first: Sequence[str] = ()) -> list[str]:
    """Names in ``first``'s order (where present), then the others in order of first appearance."""
    seen = dict.fromkeys(name for group in groups for name in group)
    return [name for name in first if name in seen] + [name for name in seen if name not in first]


def group_by_variant(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """The runs of each variant, variants in config order."""
    variants: dict[str, list[RunResult]] = {}
    for result in results:
        variants.setdefault(result.run.variant, []).append(result)
    return variants


def variant_validation(runs: Sequence[RunResult], phases: Sequence[str], sources: Sequence[str]) -> dict:
    """{phase: {source: summary over the variant's runs}} of the final validation losses."""
    table = {}
    for phase in phases:
        finals = [run.phases[phase].final for run in runs if phase in run.phases]
        table[phase] = {s: summarize(f.get(s) for f in finals) for s in sources if any(s in f for f in finals)}
    return table


def variant_evaluation(runs: Sequence[RunResult], benchmarks: Sequence[str]) -> dict:
    """{benchmark: summary of the ok scores, plus how many runs had which other status}."""
    evaluated = [run.evaluation for run in runs if run.evaluation is not None]
    table = {}
    for benchmark in benchmarks:
        entries = [evaluation.get(benchmark, {"score": None, "status": "missing"}) for evaluation in evaluated]
        other = [entry["status"] for entry in entries if entry["score"] is None]
        table[benchmark] = summarize(entry["score"] for entry in entries) | {
            "other_statuses": {status: other.count(status) for status in sorted(set(other))}
        }
    return table


def variant_cost(runs: Sequence[RunResult]) -> dict[str, Any]:
    """The variant's runs' costs summed over seeds (peak memory: the largest)."""
    rss = [run.cost["max_rss_mb"] for run in runs if run.cost["max_rss_mb"] is not None]
    return {
        "jobs": sum(run.cost["jobs"] for run in runs),
        "wall_seconds": _round(sum((run.cost["wall_seconds"] for run in runs), 0.0)),
        "cpu_seconds": _round(sum((run.cost["cpu_seconds"] for run in runs), 0.0)),
        "max_rss_mb": max(rss) if rss else None,
        "unmeasured": sum(run.cost["unmeasured"] for run in runs),
    }


def difference(stats: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's mean minus the reference variant's, and whether it exceeds their combined spread (the sum of
    the two standard deviations; None when either has a single run, whose spread is unknown)."""
    if stats["mean"] is None or reference["mean"] is None:
        return {"mean_difference": None, "combined_std": None, "beyond_spread": None}
    delta = stats["mean"] - reference["mean"]
    if stats["std"] is None or reference["std"] is None:
        return {"mean_difference": _round(delta), "combined_std": None, "beyond_spread": None}
    spread = stats["std"] + reference["std"]
    return {"mean_difference": _round(delta), "combined_std": _round(spread), "beyond_spread": abs(delta) > spread}


def differences(validation: Mapping[str, Mapping], reference: Mapping[str, Mapping]) -> dict:
    """{phase: {source: difference}} for the phases and sources both variants have."""
    return {
        phase: {
            source: difference(stats, reference[phase][source])
            for source, stats in by_source.items()
            if source in reference.get(phase, {})
        }
        for phase, by_source in validation.items()
        if phase in reference
    }


def run_entry(result: RunResult) -> dict[str, Any]:
    run = result.run
    return {
        "name": run.name,
        "variant": run.variant,
        "seed": run.seed,
        "overrides": run.overrides,
        "phases": {
            phase: {"steps": p.steps, "final_loss": {s: _round(v) for s, v in p.final.items()}}
            for phase, p in result.phases.items()
        },
        "evaluation": result.evaluation,
        "cost": result.cost,
        "benchmarks_dir": run.benchmarks,
    }


def compare(results: Sequence[RunResult]) -> dict[str, Any]:
    """Everything comparison.json holds: the runs, each variant's aggregates, the differences to the first variant,
    and the phase, source and benchmark orders the tables use."""
    phases = _ordered_union((result.phases for result in results), first=tuple(PHASE_TITLES))
    sources = _ordered_union((p.final for r in results for p in r.phases.values()), first=VALIDATION_SOURCES)
    first_order = next((r.benchmark_order for r in results if r.evaluation is not None), [])
    benchmarks = _ordered_union((r.benchmark_order for r in results), first=first_order)
    variants = []
    for name, runs in group_by_variant(results).items():
        variants.append(
            {
                "name": name,
                "overrides": runs[0].run.overrides,
                "seeds": [run.run.seed for run in runs if run.run.seed is not None],
                "runs": [run.run.name for run in runs],
                "validation": variant_validation(runs, phases, sources),
                "evaluation": variant_evaluation(runs, benchmarks)
                if any(r.evaluation is not None for r in runs)
                else None,
                "cost": variant_cost(runs),
            }
        )
    for variant in variants:
        variant["difference_to_first"] = differences(variant["validation"], variants[0]["validation"])
    return {
        "note": SCALE_NOTE,
        "reference_variant": variants[0]["name"],
        "phases": phases,
        "sources": sources,
        "benchmarks": benchmarks,
        "runs": [run_entry(result) for result in results],
        "variants": variants,
    }


# --- markdown ----------------------------------------------------------------------------------------------------


def _number_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.{DECIMALS}f}"


def stats_cell(stats: Mapping[str, Any]) -> str:
    """``mean ± std (n)``; ``mean (1)`` for a single run; ``—`` for none."""
    if not stats["n"]:
        return "—"
    spread = f" ± {stats['std']:.{DECIMALS}f}" if stats["std"] is not None else ""
    return f"{stats['mean']:.{DECIMALS}f}{spread} ({stats['n']})"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def overrides_text(overrides: Mapping[str, Any]) -> str:
    if not overrides:
        return "no overrides (the recipe as configured)"
    return ", ".join(f"`{key} = {_value_text(overrides[key])}`" for key in sorted(overrides))


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def variants_section(comparison: Mapping[str, Any]) -> list[str]:
    lines = ["## Variants", ""]
    for variant in comparison["variants"]:
        seeds = ", ".join(str(seed) for seed in variant["seeds"]) or "the run's seed only"
        lines.append(f"- **{variant['name']}**: {overrides_text(variant['overrides'])}; seeds: {seeds}")
    return lines + [""]


def validation_section(comparison: Mapping[str, Any], phase: str) -> list[str]:
    """The table of final validation losses of one phase, rows variants, columns sources, then the differences."""
    variants = [v for v in comparison["variants"] if phase in v["validation"]]
    sources = [s for s in comparison["sources"] if any(s in v["validation"][phase] for v in variants)]
    blank = {"n": 0}
    rows = [[v["name"]] + [stats_cell(v["validation"][phase].get(s, blank)) for s in sources] for v in variants]
    lines = [f"## Validation loss {PHASE_TITLES.get(phase, f'after {phase}')}", ""]
    lines += _table(["variant"] + sources, rows) + [""]
    if len(variants) > 1:
        reference = comparison["reference_variant"]
        lines += [f"Difference of the mean against **{reference}** (negative: lower loss than {reference}):", ""]
        rows = [
            [v["name"]] + [_difference_cell(v["difference_to_first"].get(phase, {}).get(s)) for s in sources]
            for v in variants
            if v["name"] != reference
        ]
        lines += _table(["variant"] + sources, rows) + [""]
    return lines


def _difference_cell(entry: Mapping[str, Any] | None) -> str:
    if entry is None or entry["mean_difference"] is None:
        return "—"
    verdict = {True: "beyond spread", False: "within spread", None: "spread unknown, n=1"}[entry["beyond_spread"]]
    return f"{entry['mean_difference']:+.{DECIMALS}f} ({verdict})"


def evaluation_section(comparison: Mapping[str, Any]) -> list[str]:
    """Rows benchmarks, columns variants: mean ± std (n) of the ok scores; other statuses named."""
    variants = [v for v in comparison["variants"] if v["evaluation"] is not None]
    lines = ["## Evaluation", ""]
    if not variants:
        return lines + ["No run has an evaluation summary.", ""]
    rows = [
        [benchmark] + [_eval_cell(v["evaluation"][benchmark]) for v in variants]
        for benchmark in comparison["benchmarks"]
    ]
    lines.append("Scores of the ok results only, mean ± sample std over seeds (n runs); other statuses are named.")
    return lines + [""] + _table(["benchmark"] + [v["name"] for v in variants], rows) + [""]


def _eval_cell(stats: Mapping[str, Any]) -> str:
    others = ", ".join(f"{status} ×{count}" for status, count in stats["other_statuses"].items())
    if not stats["n"]:
        return f"— ({others})" if others else "—"
    return stats_cell(stats) + (f"; {others}" if others else "")


def cost_section(comparison: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Cost",
        "",
        COST_NOTE,
        "",
    ]
    header = ["", "jobs", "wall s", "CPU s", "max RSS MB", "unmeasured values"]
    variant_rows = [[f"**{v['name']}**"] + _cost_cells(v["cost"]) for v in comparison["variants"]]
    run_rows = [[r["name"]] + _cost_cells(r["cost"]) for r in comparison["runs"]]
    return lines + _table(["variant"] + header[1:], variant_rows) + [""] + _table(["run"] + header[1:], run_rows) + [""]


def _cost_cells(cost: Mapping[str, Any]) -> list[str]:
    return [
        str(cost["jobs"]),
        f"{cost['wall_seconds']:.2f}",
        f"{cost['cpu_seconds']:.2f}",
        "—" if cost["max_rss_mb"] is None else f"{cost['max_rss_mb']:.2f}",
        str(cost["unmeasured"]),
    ]


def runs_section(comparison: Mapping[str, Any]) -> list[str]:
    """Each run's final loss per phase and source, the numbers the variant tables aggregate."""
    sources = comparison["sources"]
    rows = [
        [run["name"], phase, str(entry["steps"])] + [_number_text(entry["final_loss"].get(s)) for s in sources]
        for run in comparison["runs"]
        for phase, entry in run["phases"].items()
    ]
    return ["## Per run", ""] + _table(["run", "phase", "steps"] + sources, rows) + [""]


def render_markdown(comparison: Mapping[str, Any]) -> str:
    lines = [
        "# Recipe variants compared",
        "",
        f"> {SCALE_NOTE}",
        "",
        READING_NOTE,
        "",
    ]
    lines += variants_section(comparison)
    for phase in comparison["phases"]:
        lines += validation_section(comparison, phase)
    lines += evaluation_section(comparison) + cost_section(comparison) + runs_section(comparison)
    return "\n".join(lines).rstrip("\n") + "\n"


# --- curves ------------------------------------------------------------------------------------------------------


def phase_starts(result: RunResult) -> dict[str, int]:
    """Where each phase of a run begins on one step axis across its phases in order."""
    starts, offset = {}, 0
    for phase, entry in result.phases.items():
        starts[phase] = offset
        offset += entry.steps
    return starts


def cumulative_curves(result: RunResult) -> dict[str, dict[int, float]]:
    """A run's per-source validation curves on one step axis across its phases: {source: {step: loss}}. A
    phase's step 0 is the previous phase's last step, scored again by the next phase (same model)."""
    curves: dict[str, dict[int, float]] = {}
    for (phase, offset), entry in zip(phase_starts(result).items(), result.phases.values(), strict=True):
        for source, (steps, losses) in entry.curves.items():
            points = curves.setdefault(source, {})
            points.update({offset + s: loss for s, loss in zip(steps, losses, strict=True) if loss is not None})
    return curves


def variant_band(curves: Sequence[Mapping[int, float]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean, min and max over the runs that have a point at each step."""
    steps = sorted({step for curve in curves for step in curve})
    values = [[curve[step] for curve in curves if step in curve] for step in steps]
    return steps, [statistics.fmean(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot_validation_curves(results: Sequence[RunResult], sources: Sequence[str], path: str | Path) -> None:
    """curves.png: one panel per source, one line per variant (mean over seeds, min-max band shaded), dotted lines
    where phases begin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_run = {result.run.name: cumulative_curves(result) for result in results}
    # Variants may differ in a phase's length: every run's phase starts get a line, the first run's their names.
    boundaries = sorted({start for result in results for start in phase_starts(result).values() if start})
    labels = phase_starts(results[0])
    fig, axes = plt.subplots(1, len(sources), figsize=(4.5 * len(sources), 4), squeeze=False, sharex=True)
    for ax, source in zip(axes[0], sources, strict=True):
        for index, (variant, runs) in enumerate(group_by_variant(results).items()):
            curves = [per_run[run.run.name].get(source, {}) for run in runs]
            steps, mean, low, high = variant_band([curve for curve in curves if curve])
            if steps:
                ax.plot(steps, mean, color=f"C{index}", marker=".", linewidth=1.2, label=variant)
                ax.fill_between(steps, low, high, color=f"C{index}", alpha=0.2, linewidth=0)
        for step in boundaries:
            ax.axvline(step, color="0.5", linestyle=":", linewidth=1)
        for phase, start in labels.items():
            # Upright beside its line, so short phases' names do not run into each other.
            ax.text(
                start,
                0.98,
                f" {phase}",
                transform=ax.get_xaxis_transform(),
                va="top",
                rotation=90,
                fontsize="small",
                color="0.4",
                clip_on=True,
            )
        ax.set_title(f"validation loss: {source}")
        ax.set_xlabel("optimizer step (phases in order)")
        ax.set_ylabel("loss (nats/token)")
        ax.legend(fontsize="small", loc="lower left")  # the curves fall from the upper left
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


# --- the job -----------------------------------------------------------------------------------------------------


def run_experiments_compare(settings: CompareJob, paths: RulePaths) -> None:
    """Read every run's metrics, evaluation and cost; write comparison.json, comparison.md and curves.png."""
    if not settings.runs:
        raise InputError("config", "experiments: no runs to compare (no variants configured)")
    results = [read_run(run) for run in settings.runs]
    comparison = compare(results)
    write_json(paths.output["json"], comparison)
    table = Path(paths.output["table"])
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(render_markdown(comparison), encoding="utf-8")
    plot_validation_curves(results, comparison["sources"], paths.output["curves"])
