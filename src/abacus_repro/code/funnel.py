"""The code cleaning funnel over all shards: per-reason counts and fractions, and a horizontal bar plot."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..io import merge_stats, path_list, read_json, write_json
from ..rules import RulePaths
from ..settings import NoSettings
from .pipeline import REASONS

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
)


def summarize_funnel(parts: Iterable[Mapping[str, Any]]) -> dict:
    """Merge per-shard stats; add each reason's fraction of all files read and what is left after each step."""
    parts = list(parts)
    stats = merge_stats("code_clean", parts)
    read = stats["read"]
    stats["shards"] = len(parts)
    for key in SUMMED_EXTRAS:
        stats[key] = sum(int(part.get(key, 0)) for part in parts)
    stats["repo_output"] = sorted({part.get("repo_output") for part in parts if part.get("repo_output")})
    stats["dropped_fraction"] = {reason: (count / read if read else 0.0) for reason, count in stats["dropped"].items()}
    stats["kept_fraction"] = stats["kept"] / read if read else 0.0
    # Reasons in step order; a reason a shard reported that is not a known step goes last (never lost).
    order = [r for r in REASONS] + sorted(set(stats["dropped"]) - set(REASONS))
    remaining = read
    steps = []
    for reason in order:
        count = stats["dropped"].get(reason, 0)
        remaining -= count
        steps.append({"step": reason, "dropped": count, "remaining": remaining})
    stats["steps"] = steps
    stats["recipe_steps_vs_paper"] = [
        {"step": label, "ours": sum(stats["dropped_fraction"].get(r, 0.0) for r in reasons), "paper": paper}
        for label, reasons, paper in PAPER_FUNNEL
    ] + [{"step": "kept", "ours": stats["kept_fraction"], "paper": PAPER_KEPT}]
    return stats


def run_code_funnel(settings: NoSettings, paths: RulePaths) -> dict:
    """Rule code_funnel: per-shard cleaning stats -> results/code/stats.json and the funnel plot."""
    stats = summarize_funnel([read_json(path) for path in path_list(paths.input["stats"])])
    write_json(paths.output["stats"], stats)
    plot_funnel(stats, paths.output["plot"])
    log.info("code funnel: read %d, kept %d (%.1f%%)", stats["read"], stats["kept"], 100 * stats["kept_fraction"])
    return stats


def plot_funnel(stats: Mapping[str, Any], path: str | Path) -> None:
    """Horizontal bars: files read, then files left after each cleaning step (drops labelled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["read"] + [step["step"] for step in stats["steps"]]
    values = [stats["read"]] + [step["remaining"] for step in stats["steps"]]
    drops = [0] + [step["dropped"] for step in stats["steps"]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.6))
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, color="#4C72B0")
    ax.barh(positions, drops, left=values, color="#DD8452", label="dropped at this step")
    ax.set_yticks(positions, labels)
    ax.set_xlabel("files")
    read = max(stats["read"], 1)
    for pos, value, drop in zip(positions, values, drops):
        text = f"{value}" + (f"  (-{drop}, {100 * drop / read:.1f}%)" if drop else "")
        ax.text(value + drop, pos, " " + text, va="center", fontsize=8)
    ax.set_xlim(0, read * 1.35)
    ax.set_title(f"Code cleaning funnel: {stats['kept']} of {stats['read']} files kept")
    comparison = stats.get("recipe_steps_vs_paper") or []
    if comparison:
        # Below the bars, so it never covers them: our share of all files per recipe step, next to the paper's.
        summary = "   ".join(
            f"{row['step']}: {100 * row['ours']:.1f}% (paper {100 * row['paper']:.1f}%)" for row in comparison
        )
        ax.text(0.5, -0.1, summary, transform=ax.transAxes, ha="center", va="top", fontsize=7, wrap=True)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No date in the PNG metadata, so the same stats give the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
