"""The code cleaning funnel over all shards: per-reason counts and fractions, and a horizontal bar plot."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..io import merge_stats, path_list, read_json, write_json
from ..rules import RulePaths
from ..settings import NoSettings
from .licenses import merge_license_tables
from .pipeline import REASONS, STEP_REASONS, SWITCHED_STEPS

log = logging.getLogger(__name__)

# The published funnel (Abacus repository, figure 2-1, as quoted in this project's issue 3), by recipe step, as
# fractions of all files. Its "syntax errors" are step 1 (Python 2 included), its "data-dense" step 2.
PAPER_FUNNEL = (
    ("syntax_error + python2", ("syntax_error", "python2"), 0.095),
    ("data_dense + repetitive", ("data_dense", "repetitive"), 0.007),
    ("undefined_name", ("undefined_name",), 0.038),
)
PAPER_KEPT = 0.86

# Counters that shards add up (everything else in a shard's stats is per-shard detail).
SUMMED_EXTRAS = (
    "star_import_unjudged",
    "fixed_files",
    "fix_reverted",
    "import_cycles_broken",
    "repositories",
    "output_documents",
    "redacted_files",
)


def summarize_funnel(parts: Iterable[Mapping[str, Any]]) -> dict:
    """Merge per-shard stats; add each reason's fraction of all files read and what is left after each step, in
    files and (when the shards counted them) in bytes."""
    parts = list(parts)
    stats = merge_stats("code_clean", parts)
    read = stats["read"]
    stats["shards"] = len(parts)
    for key in SUMMED_EXTRAS:
        stats[key] = sum(int(part.get(key, 0)) for part in parts)
    # Redactions per kind (code/redact.py) and the licence table (code/licenses.py), summed over shards.
    stats["redacted"] = sum_counts(part.get("redacted") or {} for part in parts)
    stats["license_table"] = merge_license_tables(part.get("license_table") or {} for part in parts)
    stats["repo_output"] = sorted({part.get("repo_output") for part in parts if part.get("repo_output")})
    stats["dropped_fraction"] = {reason: (count / read if read else 0.0) for reason, count in stats["dropped"].items()}
    stats["kept_fraction"] = stats["kept"] / read if read else 0.0
    with_bytes = "read_bytes" in stats
    if with_bytes:
        read_bytes = stats["read_bytes"]
        stats["dropped_bytes_fraction"] = {
            reason: (size / read_bytes if read_bytes else 0.0) for reason, size in stats["dropped_bytes"].items()
        }
        stats["kept_bytes_fraction"] = stats["kept_bytes"] / read_bytes if read_bytes else 0.0
    off = {step for part in parts for step in part.get("steps_off", [])}
    if off:  # absent when every step ran (the recipe), as before the switches existed
        stats["steps_off"] = [step for step in SWITCHED_STEPS if step in off]
        stats["syntax_unjudged"] = sum(int(part.get("syntax_unjudged", 0)) for part in parts)
    stats["steps"] = funnel_steps(stats, with_bytes)
    stats["recipe_steps_vs_paper"] = [
        {"step": label, "ours": sum(stats["dropped_fraction"].get(r, 0.0) for r in reasons), "paper": paper}
        for label, reasons, paper in PAPER_FUNNEL
    ] + [{"step": "kept", "ours": stats["kept_fraction"], "paper": PAPER_KEPT}]
    return stats


def sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + int(value)
    return dict(sorted(total.items()))


def funnel_steps(stats: Mapping[str, Any], with_bytes: bool) -> list[dict]:
    """Per step (reasons in step order; a reason a shard reported that is not a known step goes last, never
    lost): files dropped and left, and bytes dropped and left when counted."""
    order = [r for r in REASONS] + sorted(set(stats["dropped"]) - set(REASONS))
    off_reasons = {reason for step in stats.get("steps_off", []) for reason in STEP_REASONS.get(step, ())}
    remaining, remaining_bytes = stats["read"], stats.get("read_bytes", 0)
    steps = []
    for reason in order:
        count = stats["dropped"].get(reason, 0)
        remaining -= count
        step = {"step": reason, "dropped": count, "remaining": remaining}
        if reason in off_reasons:  # switched off: it judged nothing (not "found nothing")
            step["off"] = True
        if with_bytes:
            size = stats["dropped_bytes"].get(reason, 0)
            remaining_bytes -= size
            step.update(dropped_bytes=size, remaining_bytes=remaining_bytes)
        steps.append(step)
    return steps


def run_code_funnel(settings: NoSettings, paths: RulePaths) -> dict:
    """Rule code_funnel: per-shard cleaning stats and the near-duplicate stats -> results/code/stats.json, the
    funnel plot (files and bytes per step) and the near-duplicate cluster-size histogram."""
    stats = summarize_funnel([read_json(path) for path in path_list(paths.input["stats"])])
    stats["near_dedup"] = read_json(paths.input["near_dedup"])
    write_json(paths.output["stats"], stats)
    Path(paths.output["table"]).write_text(funnel_markdown(stats), encoding="utf-8")
    plot_funnel(stats, paths.output["plot"])
    plot_cluster_sizes(stats["near_dedup"], paths.output["clusters_plot"])
    log.info("code funnel: read %d, kept %d (%.1f%%)", stats["read"], stats["kept"], 100 * stats["kept_fraction"])
    return stats


def funnel_markdown(stats: Mapping[str, Any]) -> str:
    """results/code/funnel.md: the funnel per step in files and bytes, the recipe's published funnel beside ours,
    the near-duplicate clusters by size, the licence table and the redactions."""
    lines = ["# Code cleaning funnel", "", *_steps_off_lines(stats), *_steps_table(stats), "", *_paper_table(stats), ""]
    lines += [*_near_dedup_table(stats["near_dedup"]), "", *_license_rows(stats["license_table"]), ""]
    redacted = ", ".join(f"{count} {kind}" for kind, count in stats["redacted"].items()) or "off"
    lines.append(f"Redacted in kept files: {redacted} ({stats['redacted_files']} files).")
    return "\n".join(lines) + "\n"


def _steps_table(stats: Mapping[str, Any]) -> list[str]:
    read, read_bytes = stats["read"], stats["read_bytes"]
    rows = [
        (
            f"{stats['read']} files ({read_bytes / 1e6:.2f} MB) read, {stats['kept']} kept "
            f"({100 * stats['kept_fraction']:.1f}% of files, {100 * stats['kept_bytes_fraction']:.1f}% of bytes)."
        ),
        "",
        "| step | files dropped | % of files | MB dropped | % of bytes | files left | MB left |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for step in stats["steps"]:
        name = f"{step['step']} (off)" if step.get("off") else step["step"]
        rows.append(
            f"| {name} | {step['dropped']} | {_percent(step['dropped'], read)} | "
            f"{step['dropped_bytes'] / 1e6:.3f} | {_percent(step['dropped_bytes'], read_bytes)} | "
            f"{step['remaining']} | {step['remaining_bytes'] / 1e6:.2f} |"
        )
    return rows


def _steps_off_lines(stats: Mapping[str, Any]) -> list[str]:
    """A variant's switched-off steps, said before its funnel (nothing for the recipe, where every step ran)."""
    if not stats.get("steps_off"):
        return []
    line = f"Steps switched off (config `code.steps` and others): {', '.join(stats['steps_off'])}."
    if "syntax" in stats["steps_off"]:
        line += f" {stats['syntax_unjudged']} files that do not parse were kept unjudged."
    return [line, ""]


def _paper_table(stats: Mapping[str, Any]) -> list[str]:
    rows = ["| recipe step (share of files) | ours | paper |", "|---|---:|---:|"]
    rows += [
        f"| {row['step']} | {100 * row['ours']:.2f}% | {100 * row['paper']:.1f}% |"
        for row in stats["recipe_steps_vs_paper"]
    ]
    return rows


def _near_dedup_table(near: Mapping[str, Any]) -> list[str]:
    if not near["enabled"]:
        return ["Near-duplicate removal: off (code.near_dedup.enabled)."]
    params = near["parameters"]
    rows = [
        (
            f"Near duplicates (MinHash {params['num_perm']} permutations, {params['ngram']}-grams, LSH {params['bands']} "
            f"bands x {params['rows']} rows, Jaccard >= {params['threshold']}): {near['clusters']} clusters, "
            f"{near['files_dropped']} files ({near['bytes_dropped'] / 1e6:.3f} MB) dropped."
        ),
        "",
        "| files in the cluster | clusters |",
        "|---:|---:|",
    ]
    rows += [f"| {size} | {count} |" for size, count in near["cluster_size_histogram"].items()]
    return rows


def _license_rows(table: Mapping[str, Mapping[str, int]]) -> list[str]:
    rows = [
        "| licence | files read | MB read | files kept by cleaning | MB kept by cleaning |",
        "|---|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {name} | {row['files']} | {row['bytes'] / 1e6:.2f} | {row['kept_files']} | {row['kept_bytes'] / 1e6:.2f} |"
        for name, row in table.items()
    ]
    return rows


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _funnel_panel(ax, stats: Mapping[str, Any], unit: str) -> None:
    """One panel of the funnel: what is left after each step, and what the step dropped, in files or bytes."""
    suffix, scale, label = ("", 1.0, "files") if unit == "files" else ("_bytes", 1e6, "megabytes")
    read = stats[f"read{suffix}"] / scale
    labels = ["read"] + [step["step"] for step in stats["steps"]]
    values = [read] + [step[f"remaining{suffix}"] / scale for step in stats["steps"]]
    drops = [0.0] + [step[f"dropped{suffix}"] / scale for step in stats["steps"]]
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, color="#4C72B0")
    ax.barh(positions, drops, left=values, color="#DD8452", label="dropped at this step")
    ax.set_yticks(positions, labels)
    ax.set_xlabel(label)
    fmt = "{:.0f}" if unit == "files" else "{:.2f}"
    for pos, value, drop in zip(positions, values, drops):
        text = fmt.format(value) + (f"  (-{fmt.format(drop)}, {100 * drop / read:.1f}%)" if drop and read else "")
        ax.text(value + drop, pos, " " + text, va="center", fontsize=8)
    ax.set_xlim(0, max(read, 1e-9) * 1.45)


def plot_funnel(stats: Mapping[str, Any], path: str | Path) -> None:
    """Horizontal bars: files read, then files left after each cleaning step (drops labelled); beside it the same
    in megabytes when the shards counted bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = ["files", "bytes"] if "read_bytes" in stats else ["files"]
    height = 0.45 * (len(stats["steps"]) + 1) + 1.6
    fig, axes = plt.subplots(1, len(units), figsize=(9 * len(units), height), squeeze=False)
    for ax, unit in zip(axes[0], units):
        _funnel_panel(ax, stats, unit)
    axes[0][0].legend(loc="lower right", fontsize=8)
    title = f"Code cleaning funnel: {stats['kept']} of {stats['read']} files kept"
    if "read_bytes" in stats:
        title += f", {stats['kept_bytes'] / 1e6:.2f} of {stats['read_bytes'] / 1e6:.2f} MB"
    fig.suptitle(title)
    comparison = stats.get("recipe_steps_vs_paper") or []
    if comparison:
        # Below the bars, so it never covers them: our share of all files per recipe step, next to the paper's.
        summary = "   ".join(
            f"{row['step']}: {100 * row['ours']:.1f}% (paper {100 * row['paper']:.1f}%)" for row in comparison
        )
        fig.text(0.5, 0.01, summary, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(fig, path)


def plot_cluster_sizes(near: Mapping[str, Any], path: str | Path) -> None:
    """Bars: number of near-duplicate clusters of each size (files per cluster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histogram = {int(size): count for size, count in near["cluster_size_histogram"].items()}
    fig, ax = plt.subplots(figsize=(7, 4))
    if histogram:
        sizes = sorted(histogram)
        ax.bar([str(size) for size in sizes], [histogram[size] for size in sizes], color="#4C72B0")
        for position, size in enumerate(sizes):
            ax.text(position, histogram[size], str(histogram[size]), ha="center", va="bottom", fontsize=8)
    else:
        state = "disabled" if not near["enabled"] else "no near-duplicate clusters"
        ax.text(0.5, 0.5, state, transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("files in the cluster")
    ax.set_ylabel("clusters")
    ax.set_title(
        f"Near-duplicate clusters: {near['clusters']}, {near['files_dropped']} files dropped "
        f"(Jaccard >= {near['parameters']['threshold']})"
    )
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No date in the PNG metadata, so the same stats give the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
