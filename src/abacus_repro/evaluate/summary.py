"""One score per benchmark and model (summary.json), the seed's two tables with our rows on top (summary.md), a plot.

Scores are in percent, like the published tables. AVG is the plain mean of a row's scores, as in the seed
(珠算's code AVG 49.64 = mean of 71.95, 65.85, 57.98, 43.36, 9.06). The seed averaged unrounded scores, so a
published AVG can differ by 0.01 from the mean of the rounded numbers shown (Stable-Code's general row).
A row's AVG is given only when every benchmark of the table was run; otherwise the mean over the ones that
were is stated in a note, never passed off as comparable.

``summary.json``: ``{model name: {benchmark: entry}}`` in the configured model order (ours first by default).
Every table column appears for every model; an entry is ``{"status": "ok", "score", "n", "data_sha256", ...}``
or ``{"status": "skipped", "reason", ...}``. HumanEval infilling (``infill``), which has no published Abacus number,
gets a table of its own: pass@1 and exact match per model, single-line / multi-line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import read_json, write_json
from ..rules import RulePaths
from ..settings import EvalModel, InfillSettings, Settings

log = logging.getLogger(__name__)

PUBLISHED = Path(__file__).resolve().parent / "published.json"
MISSING = "—"
# The plot's default font has no CJK glyphs: the published Abacus row is labelled in Latin letters there.
PLOT_LABELS = {"珠算": "Abacus"}

# Table column -> our benchmark key in summary.json.
CODE_COLUMNS = {
    "HumanEval": "humaneval",
    "HumanEval+": "humaneval_plus",
    "MBPP(sanitized)": "mbpp",
    "MBPP+": "mbpp_plus",
    "LiveCodeBench": "livecodebench",
}
GENERAL_COLUMNS = {
    "MMLU": "mmlu",
    "HellaSwag": "hellaswag",
    "ARC-e": "arc_easy",
    "BBH": "bbh",
    "C-Eval": "ceval",
    "CMMLU": "cmmlu",
    "GSM8K": "gsm8k",
}
TABLE_COLUMNS = {"code": CODE_COLUMNS, "general": GENERAL_COLUMNS}
# HumanEval infilling (no published Abacus number to set it beside): its kind -> our key in summary.json.
INFILL_KEYS = {"single_line": "humaneval_infill_single_line", "multi_line": "humaneval_infill_multi_line"}
# The code benchmarks' result folders, ``root/<model>/<benchmark>/result.json`` (infilling when eval.infill.enabled).
CODE_BENCHMARKS = ("humaneval", "mbpp", "livecodebench")
INFILL_BENCHMARK = "humaneval_infill"
# How each benchmark is scored here (shown under the tables).
PROTOCOLS = {
    "humaneval": "pass@1, greedy, evalplus base tests",
    "humaneval_plus": "pass@1, greedy, evalplus base + plus tests",
    "mbpp": "pass@1, greedy, evalplus base tests (the original MBPP tests)",
    "mbpp_plus": "pass@1, greedy, evalplus base + plus tests",
    "livecodebench": "pass@1, greedy, public + private tests in the sandbox, contest-date window",
    "humaneval_infill_single_line": "pass@1, greedy, PSM fill-in-the-middle of one solution line, HumanEval's tests",
    "humaneval_infill_multi_line": "pass@1, greedy, PSM fill-in-the-middle of 2+ solution lines, HumanEval's tests",
    "mmlu": "5-shot, acc (letter log-likelihood)",
    "hellaswag": "0-shot, acc_norm",
    "arc_easy": "0-shot, acc",
    "bbh": "3-shot CoT, exact match after 'the answer is'",
    "ceval": "5-shot, acc (val split)",
    "cmmlu": "5-shot, acc",
    "gsm8k": "5-shot, exact match of '#### N' (strict-match)",
}


def load_published(path: str | Path = PUBLISHED) -> dict:
    return read_json(path)


def row_average(scores: list[float | None]) -> float | None:
    """The seed's AVG: the mean of the row's scores; None when any is missing."""
    if not scores or any(score is None for score in scores):
        return None
    return sum(scores) / len(scores)


def _relative_names(paths: Sequence[str]) -> list[str]:
    """Paths relative to the folder they share (``dev/x.csv``, ``test/x.csv``), so equal names stay apart."""
    if len(paths) == 1:
        return [Path(paths[0]).name]
    root = os.path.commonpath([str(Path(path).parent) for path in paths])
    return [os.path.relpath(path, root) for path in paths]


def combined_sha256(files: list[dict]) -> str:
    """One digest for a benchmark's data: the file's own sha256, or one over sorted ``sha256  relative/path``
    lines (paths relative to the files' common folder, so the digest does not depend on where the data is)."""
    if len(files) == 1:
        return files[0]["sha256"]
    names = _relative_names([item["path"] for item in files])
    lines = sorted(f"{item['sha256']}  {name}\n" for item, name in zip(files, names))
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def describe_files(paths: Sequence[str]) -> str:
    """A short name for a benchmark's data files: the file, or how many files under which folder."""
    if not paths:
        return MISSING
    if len(paths) == 1:
        return Path(paths[0]).name
    root = os.path.commonpath([str(Path(path).parent) for path in paths])
    return f"{len(paths)} files in {Path(root).name}/"


def _skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason, "score": None, "n": None, "data_sha256": None}


def evalplus_entries(result: dict) -> dict[str, dict]:
    """summary.json entries from an evalplus result (humaneval -> humaneval, humaneval_plus; mbpp likewise)."""
    name = result.get("benchmark", "humaneval")
    if result.get("status") != "ok":
        entry = _skip(result.get("reason", "not run"))
        return {name: dict(entry), f"{name}_plus": dict(entry)}
    dataset = result["dataset"]
    by_check_function = result.get("scored_by") == "check function in the sandbox"
    common = {
        "status": "ok",
        "n": result["n"],
        "limit": result.get("limit"),
        **data_record(dataset),
        "metric": "pass@1",
        **generation_record(result),
        "tool": "sandbox" if by_check_function else f"evalplus {result.get('evalplus_version', '')}".strip(),
    }
    if by_check_function:
        common["protocol"] = "pass@1, greedy, the original tests (OpenAI HumanEval's check function) in the sandbox"
    entries = {name: {"score": 100.0 * result["pass@1"]["base"], "tests": "base", **common}}
    if result["pass@1"].get("plus") is None:
        entries[f"{name}_plus"] = _skip(
            f"{dataset['version']} has no plus tests: the plus column needs evalplus's release file "
            f"(eval.{name}.path, or eval.download on an online machine)"
        )
    else:
        entries[f"{name}_plus"] = {"score": 100.0 * result["pass@1"]["plus"], "tests": "base+plus", **common}
    return entries


def data_record(dataset: dict) -> dict:
    """Which benchmark file a score comes from: its sha256, release, path and how it was found."""
    return {
        "data_sha256": dataset["sha256"],
        "data_version": dataset["version"],
        "data_path": dataset["path"],
        "data_source": dataset.get("source"),
        "data_source_detail": dataset.get("source_detail"),
    }


def generation_record(result: dict) -> dict:
    """The settings that move a code benchmark's score, as its result recorded them."""
    keys = ("prompt_style", "decoding", "batch_size", "max_new_tokens", "sanitizer")
    return {key: result.get(key) for key in keys}


def livecodebench_entries(result: dict) -> dict[str, dict]:
    if result.get("status") != "ok":
        return {"livecodebench": _skip(result.get("reason", "not run"))}
    dataset = result["dataset"]
    start, end = dataset["window"]
    files = ", ".join(Path(item["path"]).name for item in dataset["files"])
    return {
        "livecodebench": {
            "status": "ok",
            "score": 100.0 * result["pass@1"],
            "n": result["n"],
            "limit": result.get("limit"),
            "data_sha256": dataset["sha256"],
            "data_version": f"{files} ({dataset['n_in_window']} of {dataset['n_total']} problems in {start}..{end})",
            "metric": "pass@1",
            "by_difficulty": result.get("by_difficulty", {}),
            **generation_record(result),
            "tool": "sandbox",
        }
    }


def infill_entries(result: dict) -> dict[str, dict]:
    """summary.json entries of HumanEval infilling: one per kind (single-line, multi-line), with its exact match."""
    if result.get("status") != "ok":
        return {key: _skip(result.get("reason", "not run")) for key in INFILL_KEYS.values()}
    dataset = result["dataset"]
    entries = {}
    for kind, key in INFILL_KEYS.items():
        if result["pass@1"][kind] is None:
            entries[key] = _skip(f"no {kind.replace('_', '-')} span among the selected problems")
            continue
        entries[key] = {
            "status": "ok",
            "score": 100.0 * result["pass@1"][kind],
            "exact_match": 100.0 * result["exact_match"][kind],
            "n": result["n_spans"][kind],
            "n_problems": result["n_problems"],
            **data_record(dataset),
            "metric": "pass@1",
            **generation_record(result),
            "tool": "sandbox" if result.get("scored_by") == "check function in the sandbox" else "evalplus",
        }
    return entries


def code_entries(result: dict) -> dict[str, dict]:
    if result.get("benchmark") == "livecodebench":
        return livecodebench_entries(result)
    if result.get("benchmark") == INFILL_BENCHMARK:
        return infill_entries(result)
    return evalplus_entries(result)


def general_entries(result: dict) -> dict[str, dict]:
    entries = {}
    for name, task in result.get("tasks", {}).items():
        if task.get("status") != "ok":
            entries[name] = _skip(task.get("reason", "not run"))
            continue
        entries[name] = {
            "status": "ok",
            "score": 100.0 * task["score"],
            "metric": task["metric"],
            "metrics": task.get("metrics", {}),
            "n": task["n"],
            "limit": task.get("limit"),
            "num_fewshot": task.get("num_fewshot"),
            "data_sha256": combined_sha256(task["data"]),
            "data_files": [item["path"] for item in task["data"]],
            "tool": f"lm-eval {result.get('lm_eval_version', '')}".strip(),
        }
    return entries


def build_summary(code_results: list[dict], general_result: dict) -> dict[str, dict]:
    """One model's {benchmark: entry}; every table column appears, run or not."""
    summary: dict[str, dict] = {}
    for result in code_results:
        summary.update(code_entries(result))
    summary.update(general_entries(general_result))
    for key in _detail_keys():
        summary.setdefault(key, _skip("not part of this run's configuration"))
    return dict(sorted(summary.items()))


def _format_score(entry: dict) -> str:
    if entry.get("status") != "ok":
        return MISSING
    return f"{entry['score']:.2f} (n={entry['n']})"


def _our_row(label: str, columns: dict[str, str], summary: dict[str, dict]) -> tuple[str, str | None]:
    ours = [summary[key] for key in columns.values()]
    scores = [entry["score"] if entry.get("status") == "ok" else None for entry in ours]
    avg = row_average(scores)
    cells = [label, *[_format_score(e) for e in ours], f"{avg:.2f}" if avg is not None else MISSING]
    note = None
    ran = [score for score in scores if score is not None]
    if ran and avg is None:
        note = (
            f"{label}: AVG left out, {len(ran)} of {len(scores)} benchmarks were run "
            f"(their mean is {sum(ran) / len(ran):.2f}, not comparable with the published AVG)."
        )
    return "| " + " | ".join(cells) + " |", note


def _markdown_table(table: dict, columns: dict[str, str], models: Mapping[str, dict]) -> tuple[list[str], list[str]]:
    header = ["模型名称 / model", *table["columns"], "AVG"]
    if list(columns) != table["columns"]:
        raise AssertionError(f"published columns {table['columns']} differ from ours {list(columns)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + [":---:"] * (len(header) - 1)) + "|"]
    notes = []
    for label, summary in models.items():
        line, note = _our_row(label, columns, summary)
        lines.append(line)
        if note:
            notes.append(note)
    for row in table["rows"]:
        lines.append(
            "| " + " | ".join([row["model"], *[f"{s:.2f}" for s in row["scores"]], f"{row['avg']:.2f}"]) + " |"
        )
    return lines, notes


def _detail_keys() -> list[str]:
    """Every benchmark key of summary.json: the tables' columns, then infilling's."""
    return [key for columns in TABLE_COLUMNS.values() for key in columns.values()] + list(INFILL_KEYS.values())


def _infill_table(models: Mapping[str, dict]) -> list[str]:
    """One row per model: infilling pass@1 and exact match, single-line / multi-line (no published row to compare)."""
    lines = [
        "| 模型名称 / model | HumanEval infilling (single-line / multi-line) | exact match (single-line / multi-line) |",
        "|:---|:---:|:---:|",
    ]
    for label, summary in models.items():
        entries = [summary[key] for key in INFILL_KEYS.values()]
        scores = " / ".join(_format_score(entry) for entry in entries)
        exact = " / ".join(f"{e['exact_match']:.2f}" if e.get("status") == "ok" else MISSING for e in entries)
        lines.append(f"| {label} | {scores} | {exact} |")
    return lines


def _benchmark_rows(models: Mapping[str, dict]) -> list[str]:
    """n, data (which file, from where) and hash per benchmark (the same data for every model), the generation
    settings, with each model's status."""
    out = [
        "| benchmark | protocol | n | data | source | sha256 | generation | status |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for key in _detail_keys():
        entries = {label: summary[key] for label, summary in models.items()}
        ran = [entry for entry in entries.values() if entry.get("status") == "ok"]
        protocol = PROTOCOLS.get(key, "")
        source, generation = MISSING, MISSING
        if ran:
            entry = ran[0]
            data = entry.get("data_version") or describe_files(entry.get("data_files", []))
            n, digest = str(entry["n"]), f"`{entry['data_sha256'][:16]}`"
            protocol = entry.get("protocol", protocol)
            source = _describe_source(entry)
            generation = _describe_generation(entry)
        else:
            data, n, digest = MISSING, MISSING, MISSING
        statuses = "; ".join(
            f"{label}: ok" if entry.get("status") == "ok" else f"{label}: skipped ({entry.get('reason', '')})"
            for label, entry in entries.items()
        )
        out.append(f"| {key} | {protocol} | {n} | {data} | {source} | {digest} | {generation} | {statuses} |")
    return out


def _describe_source(entry: dict) -> str:
    """Where a benchmark's data came from: the configured path, a package (and its version), the cached or
    downloaded release (and its URL)."""
    source = entry.get("data_source")
    if not source:
        return MISSING
    detail = entry.get("data_source_detail")
    return f"{source} ({detail})" if detail and source != "configured path" else source


def _describe_generation(entry: dict) -> str:
    """The generation settings that move a code score: prompt style, decoding, batch size, max new tokens,
    sanitizer (the general benchmarks' are lm-eval's, described by their protocol)."""
    if not entry.get("decoding"):
        return MISSING
    parts = [
        f"{entry['prompt_style']} prompts",
        entry["decoding"],
        f"batch {entry['batch_size']}",
        f"max {entry['max_new_tokens']} new tokens",
    ]
    if entry.get("sanitizer"):
        parts.append(f"sanitized by {entry['sanitizer']}")
    return ", ".join(parts)


def render_markdown(models: Mapping[str, dict], published: dict) -> str:
    """The seed's two tables, our models' rows first, then the published rows; then the benchmark details."""
    out = [
        "# Evaluation summary",
        "",
        "Scores in percent. The first rows are the models this run evaluated; n is the number of items each was",
        "scored on (a subset wherever n is smaller than the benchmark). The other rows are the published Abacus",
        "tables. AVG is the mean of a row's scores, as in the seed.",
        "",
    ]
    for key, columns in TABLE_COLUMNS.items():
        table = published["tables"][key]
        lines, notes = _markdown_table(table, columns, models)
        out += [f"## {table['title']}", "", *lines, ""]
        for note in notes:
            out += [note, ""]
    out += ["## HumanEval infilling", "", *_infill_table(models), ""]
    out += ["## Benchmarks", "", *_benchmark_rows(models), ""]
    out += [f"Published numbers: {published['source']}", ""]
    return "\n".join(out)


def render_plot(models: Mapping[str, dict], published: dict, path: str | Path) -> None:
    """Grouped bars per table: for each benchmark some model scored, our models next to the published ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(11, 8))
    for ax, (key, columns) in zip(axes, TABLE_COLUMNS.items()):
        table = published["tables"][key]
        shown = [
            (index, column, name)
            for index, (column, name) in enumerate(columns.items())
            if any(summary.get(name, {}).get("status") == "ok" for summary in models.values())
        ]
        ax.set_title(f"{table['title']}: this run next to the published rows", fontsize=10)
        if not shown:
            ax.text(0.5, 0.5, "no benchmark of this table was run", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        series: list[tuple[str, list[float], bool]] = []
        for label, summary in models.items():
            values = [summary[name]["score"] if summary[name].get("status") == "ok" else 0.0 for _, _, name in shown]
            series.append((label, values, True))
        for row in table["rows"]:
            series.append((PLOT_LABELS.get(row["model"], row["model"]), [row["scores"][i] for i, _, _ in shown], False))
        width = 0.8 / len(series)
        for offset, (label, values, ours) in enumerate(series):
            xs = [i + (offset - (len(series) - 1) / 2) * width for i in range(len(shown))]
            ax.bar(
                xs, values, width=width, label=label, edgecolor="black" if ours else None, hatch="//" if ours else None
            )
        ax.set_xticks(range(len(shown)), [column for _, column, _ in shown])
        ax.set_ylabel("score (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No timestamp in the file: the same scores give the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def model_summaries(results: Mapping[str, dict[str, Any]]) -> dict[str, dict]:
    """``{model: {"code": [result paths], "general": path}}`` -> ``{model: {benchmark: entry}}``."""
    summaries = {}
    for model, paths in results.items():
        code_results = [read_json(path) for path in paths.get("code", [])]
        general = read_json(paths["general"]) if paths.get("general") else {}
        summaries[model] = build_summary(code_results, general)
    return summaries


def write_summary(
    results: Mapping[str, dict[str, Any]],
    summary_path: str | Path,
    table_path: str | Path,
    plot_path: str | Path,
) -> dict[str, dict]:
    """summary.json, summary.md and the plot for every model of ``results`` (see ``model_summaries``)."""
    summaries = model_summaries(results)
    published = load_published()
    write_json(summary_path, summaries)
    Path(table_path).parent.mkdir(parents=True, exist_ok=True)
    Path(table_path).write_text(render_markdown(summaries, published), encoding="utf-8")
    render_plot(summaries, published, plot_path)
    return summaries


def collect_results(root: str | Path, models: Sequence[str], code: Sequence[str] = CODE_BENCHMARKS):
    """The result files of the workflow's layout, ``root/<model>/<benchmark>/result.json``, per model."""
    root = Path(root)
    return {
        model: {
            "code": [root / model / name / "result.json" for name in code],
            "general": root / model / "general" / "result.json",
        }
        for model in models
    }


def format_scores(summaries: Mapping[str, dict]) -> str:
    """One line per model with the benchmarks that were run, for logs and the command line."""
    return "\n".join(
        f"{model}: " + json.dumps({k: round(v["score"], 2) for k, v in summary.items() if v.get("status") == "ok"})
        for model, summary in summaries.items()
    )


class SummaryJob(Settings):
    """Rule eval_summary's settings: the evaluated models (eval.models), whose rows the tables get in this order,
    and whether HumanEval infilling was run (eval.infill)."""

    models: list[EvalModel]
    infill: InfillSettings


def run_eval_summary(settings: SummaryJob, paths: RulePaths) -> None:
    """Rule eval_summary: summary.json, the seed's tables with every evaluated model's row (summary.md), the plot."""
    root = Path(paths.output["summary"]).parent
    code = CODE_BENCHMARKS + ((INFILL_BENCHMARK,) if settings.infill.enabled else ())
    summaries = write_summary(
        collect_results(root, [model.name for model in settings.models], code),
        paths.output["summary"],
        paths.output["table"],
        paths.output["plot"],
    )
    log.info("scores:\n%s", format_scores(summaries))
