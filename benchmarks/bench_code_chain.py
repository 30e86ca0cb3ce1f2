"""Benchmark: the whole code cleaning chain over the Python standard library, per core, at 1x, 2x and 4x the
corpus, against the same chain with one ruff process per file (the per-file baseline), in the same process.

The chain is what one `code_clean` job does to its shard: duplicates, Python 3 parse / Python 2 / syntax errors,
data-dense and repetitive files, ruff F821 and ruff's layout fixes, dependency order, and writing the kept and
dropped Parquet files. The corpus is the running interpreter's standard library read by the ingest stage's own
functions (one repository per top-level package). At 2x and 4x every extra copy is a repository of its own with a
one-line comment appended to each file, so duplicate detection cannot shortcut the extra work.

"Per core" is measured, not assumed: throughput = megabytes / CPU seconds of this process and of every ruff
process it started (ruff runs several threads; their CPU time counts). Wall times are printed too, but on a busy
machine only the CPU figures are comparable between runs. Both sides must reach exactly the same decisions.

    .venv/bin/python benchmarks/bench_code_chain.py [--scales 1 2 4] [--limit-files N] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sysconfig
import tempfile
import time
from pathlib import Path

from abacus_repro.code import clean_shard
from abacus_repro.code.pipeline import _judge_syntax_and_content, _to_items
from abacus_repro.code.ruff_batch import check_and_fix, ruff_binary
from abacus_repro.ingest.code import (
    SourceFile,
    code_record,
    list_repository_files,
    read_source_file,
    repositories_in_root,
)
from abacus_repro.io import content_id, doc_meta, make_doc, write_docs
from abacus_repro.settings import CodeSettings

TARGET_MB_PER_CORE_S = 2.0
TARGET_SPEEDUP = 10.0


def stdlib_documents(limit: int | None) -> list[dict]:
    """The standard library as ingest reads it: one code document per .py file, sorted by repository/path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for repo in repositories_in_root("stdlib", root):
        python_files, _docs = list_repository_files(repo)
        for rel in python_files:
            raw, text, error, detail = read_source_file(repo.base / rel, CodeSettings().max_file_bytes)
            docs.append(code_record(SourceFile(repo.name, rel, raw, text, error, detail)))
    return docs[:limit] if limit else docs


def scaled(docs: list[dict], scale: int) -> list[dict]:
    """``scale`` copies of the corpus; copy k > 0 lives in repositories "copy<k>/..." and each of its files ends
    with a comment naming the copy, so no file is a duplicate of another."""
    out = list(docs)
    for copy in range(1, scale):
        for doc in docs:
            meta = doc_meta(doc)
            meta["repo"] = f"copy{copy}/{meta['repo']}"
            text = doc["text"] + (f"\n# benchmark copy {copy}\n" if doc["text"] else "")
            out.append(make_doc(text, source="code", meta=meta, id=content_id(doc["id"], str(copy))))
    return out


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_chain(docs: list[dict], settings: CodeSettings, workdir: Path) -> tuple[dict, dict]:
    """(timings, decisions) of one code_clean job over ``docs``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    kept, dropped, funnel = clean_shard(docs, settings)
    write_docs(workdir / "kept.parquet", kept)
    write_docs(workdir / "dropped.parquet", dropped, dropped=True)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    megabytes = sum(len(doc["text"].encode("utf-8")) for doc in docs) / 1e6
    timings = {
        "files": len(docs),
        "megabytes": round(megabytes, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "mb_per_core_s": round(megabytes / cpu, 3),
        "files_per_core_s": round(len(docs) / cpu, 1),
        "kept": funnel.kept,
        "dropped": dict(sorted(funnel.dropped.items())),
    }
    decisions = {
        "kept": [(doc["id"], doc["text"]) for doc in kept],
        "dropped": sorted((row["id"], row["reason"]) for row in dropped),
    }
    return timings, decisions


def ruff_steps_alone(docs: list[dict], settings: CodeSettings) -> dict:
    """The two ruff steps (F821, then the fixes) on the files that reach them, batched and one file per process:
    the only part of the chain in which the baseline differs."""
    items = _to_items(docs)
    _judge_syntax_and_content(items, settings, dedup=True, progress=False)
    candidates = [item for item in items if item.reason is None]
    texts = [item.text for item in candidates]
    paths = [str(item.meta.get("path", "")) for item in candidates]
    judge = [not (item.parsed and item.parsed.star_import) for item in candidates]
    result = {"files": len(texts)}
    outputs = {}
    for name, batch in (("batched", settings.ruff_batch_size), ("per_file", 1)):
        cpu, wall = cpu_seconds(), time.perf_counter()
        outputs[name] = check_and_fix(texts, paths, judge, settings.model_copy(update={"ruff_batch_size": batch}))
        result[f"{name}_cpu_s"] = round(cpu_seconds() - cpu, 2)
        result[f"{name}_wall_s"] = round(time.perf_counter() - wall, 2)
    assert outputs["batched"] == outputs["per_file"], "batching changed ruff's findings or fixes"
    result["per_file_over_batched_cpu"] = round(result["per_file_cpu_s"] / result["batched_cpu_s"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit-files", type=int, default=None, help="first N files of the stdlib (quick runs)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the per-file baseline (slow)")
    args = parser.parse_args()

    settings = CodeSettings()
    base = stdlib_documents(args.limit_files)
    report: dict = {
        "benchmark": "code_chain",
        "corpus": f"Python {platform.python_version()} standard library ({sysconfig.get_paths()['stdlib']})",
        "ruff": ruff_binary(),
        "scales": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-code-") as tmp:
        workdir = Path(tmp)
        decisions_1x = None
        for scale in args.scales:
            timings, decisions = run_chain(scaled(base, scale), settings, workdir)
            report["scales"].append({"scale": scale, **timings})
            if scale == 1:
                decisions_1x = decisions
        first = report["scales"][0]
        for entry in report["scales"]:
            # CPU seconds per megabyte relative to the smallest scale: 1.0 means cost grows linearly.
            entry["cpu_per_mb_vs_smallest"] = round(
                (entry["cpu_s"] / entry["megabytes"]) / (first["cpu_s"] / first["megabytes"]), 3
            )
        if not args.no_baseline:
            per_file = settings.model_copy(update={"ruff_batch_size": 1})
            timings, decisions = run_chain(base, per_file, workdir)
            if decisions_1x is not None:
                assert decisions == decisions_1x, "the per-file baseline reached different decisions"
                report["same_decisions_as_baseline"] = True
            report["per_file_baseline_1x"] = timings
            chain_1x = next((e for e in report["scales"] if e["scale"] == 1), None)
            if chain_1x:
                report["chain_speedup_vs_per_file_cpu"] = round(timings["cpu_s"] / chain_1x["cpu_s"], 2)
            report["ruff_steps_1x"] = ruff_steps_alone(base, settings)
    best = min(entry["mb_per_core_s"] for entry in report["scales"])
    report["targets"] = {
        f"chain_mb_per_core_s>={TARGET_MB_PER_CORE_S}": best >= TARGET_MB_PER_CORE_S,
    }
    if "chain_speedup_vs_per_file_cpu" in report:
        report["targets"][f"chain_speedup>={TARGET_SPEEDUP}"] = (
            report["chain_speedup_vs_per_file_cpu"] >= TARGET_SPEEDUP
        )
        report["targets"][f"ruff_steps_speedup>={TARGET_SPEEDUP}"] = (
            report["ruff_steps_1x"]["per_file_over_batched_cpu"] >= TARGET_SPEEDUP
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
