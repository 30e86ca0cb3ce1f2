"""Benchmark: near-duplicate removal (MinHash signatures, LSH, verified clusters) per core, at 1x, 2x and 4x a
corpus of real code, with the cost per megabyte at each scale against the 1x run in the same process.

The corpus is the running interpreter's standard library read by the ingest stage's own functions (as
bench_code_chain.py reads it). At 2x and 4x every extra copy is a repository of its own whose files are near
copies: a comment line of new words after every 20th line (an estimated Jaccard similarity around 0.8-0.9 to the
original), so the extra copies are real work for every stage and most of them must be found and dropped.

The three stages run as the rules run them: code_minhash per shard (two shards, written to Parquet), code_lsh
(``bucket_jobs`` band groups), code_near_clusters. "Per core" is measured: throughput = megabytes / CPU seconds of
this process (every stage is single-threaded Python and numpy).

    .venv/bin/python benchmarks/bench_code_near_dedup.py [--scales 1 2 4] [--limit-files N] [--bucket-jobs 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from bench_code_chain import stdlib_documents as code_chain_corpus

from abacus_repro.code.near_dedup import (
    CANDIDATE_SCHEMA,
    NearDedupJob,
    file_signatures,
    lsh_candidates,
    near_clusters,
)
from abacus_repro.code.settings import CLEANED_META_KEY
from abacus_repro.io import content_id, doc_meta, make_doc, write_table
from abacus_repro.settings import NearDedupSettings

EDIT_EVERY_LINES = 20
WARM_UP_FILES = 50
SHARDS = 2


def stdlib_documents(limit: int | None) -> list[dict]:
    """The standard library as ingest reads it (bench_code_chain's corpus), decodable files only, as code_clean's
    cleaned documents."""
    docs = [cleaned(doc) for doc in code_chain_corpus(None) if not doc_meta(doc).get("ingest_error") and doc["text"]]
    return docs[:limit] if limit else docs


def cleaned(doc: dict, text: str | None = None, meta: dict | None = None, id: str | None = None) -> dict:
    """A document as code_clean writes it to cleaned.parquet (its size as read under CLEANED_META_KEY)."""
    text = doc["text"] if text is None else text
    meta = dict(doc_meta(doc) if meta is None else meta)
    meta[CLEANED_META_KEY] = {"read_bytes": len(text.encode("utf-8")), "fixed": False, "imports": []}
    return make_doc(text, "code", meta, id=id or doc["id"])


def near_copy(text: str, copy: int) -> str:
    lines = text.splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines, 1):
        out.append(line)
        if number % EDIT_EVERY_LINES == 0:
            out.append(f"# benchmark copy {copy} edit {number} note\n")
    return "".join(out)


def scaled(docs: list[dict], scale: int) -> list[dict]:
    out = list(docs)
    for copy in range(1, scale):
        for doc in docs:
            meta = doc_meta(doc)
            meta["repo"] = f"copy{copy}/{meta['repo']}"
            out.append(cleaned(doc, near_copy(doc["text"], copy), meta, content_id(doc["id"], str(copy))))
    return out


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def timed(stage: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = stage()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def run_scale(docs: list[dict], job: NearDedupJob, workdir: Path) -> dict:
    """The three rule stages over ``docs`` split into SHARDS signature files; timings and what was found."""
    shards = [docs[i::SHARDS] for i in range(SHARDS)]
    signature_paths = [str(workdir / f"signatures-{i}.parquet") for i in range(SHARDS)]
    candidate_paths = [str(workdir / f"candidates-{g}.parquet") for g in range(job.near_dedup.bucket_jobs)]

    def signatures() -> None:
        for number, (path, shard) in enumerate(zip(signature_paths, shards)):
            write_table(path, file_signatures(shard, job, number, path))

    def lsh() -> int:
        found = 0
        for group, path in enumerate(candidate_paths):
            pairs = lsh_candidates(signature_paths, job.near_dedup, group)
            write_table(path, pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}, schema=CANDIDATE_SCHEMA))
            found += len(pairs)
        return found

    timings: dict[str, Any] = {}
    _none, timings["signatures_wall_s"], timings["signatures_cpu_s"] = timed(signatures)
    _pairs, timings["lsh_wall_s"], timings["lsh_cpu_s"] = timed(lsh)
    (_rows, stats), timings["clusters_wall_s"], timings["clusters_cpu_s"] = timed(
        lambda: near_clusters(signature_paths, candidate_paths, job)
    )
    megabytes = sum(len(doc["text"].encode("utf-8")) for doc in docs) / 1e6
    cpu = timings["signatures_cpu_s"] + timings["lsh_cpu_s"] + timings["clusters_cpu_s"]
    result = {"files": len(docs), "megabytes": round(megabytes, 2)}
    result.update({key: round(value, 2) for key, value in timings.items()})
    result.update(
        cpu_s=round(cpu, 2),
        mb_per_core_s=round(megabytes / cpu, 3),
        signatures_mb_per_core_s=round(megabytes / timings["signatures_cpu_s"], 3),
        candidate_pairs=stats["candidate_pairs"],
        false_positive_pairs=stats["false_positive_pairs"],
        clusters=stats["clusters"],
        files_dropped=stats["files_dropped"],
        cluster_size_histogram=stats["cluster_size_histogram"],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit-files", type=int, default=None, help="first N files of the stdlib (quick runs)")
    parser.add_argument("--bucket-jobs", type=int, default=NearDedupSettings().bucket_jobs)
    args = parser.parse_args()

    job = NearDedupJob(seed=1234, near_dedup=NearDedupSettings(bucket_jobs=args.bucket_jobs))
    base = stdlib_documents(args.limit_files)
    report: dict = {
        "benchmark": "code_near_dedup",
        "corpus": f"Python {platform.python_version()} standard library ({sysconfig.get_paths()['stdlib']})",
        "near_dedup": job.near_dedup.model_dump(),
        "near_copy": f"a comment line after every {EDIT_EVERY_LINES}th line",
        "scales": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-near-dedup-") as tmp:
        # Not reported: the first run pays for imports and first calls, which would weigh on the smallest scale.
        run_scale(base[:WARM_UP_FILES], job, Path(tmp))
        for scale in args.scales:
            entry = run_scale(scaled(base, scale), job, Path(tmp))
            report["scales"].append({"scale": scale, **entry})
    first = report["scales"][0]
    for entry in report["scales"]:
        # CPU seconds per megabyte relative to the smallest scale: 1.0 means the cost grows linearly.
        entry["cpu_per_mb_vs_smallest"] = round(
            (entry["cpu_s"] / entry["megabytes"]) / (first["cpu_s"] / first["megabytes"]), 3
        )
        extra_files = entry["files"] - first["files"]
        # Near copies found: files dropped beyond those the 1x corpus drops on its own, per extra file.
        entry["extra_copies_dropped_fraction"] = (
            round((entry["files_dropped"] - first["files_dropped"]) / extra_files, 3) if extra_files else None
        )
    report["numpy"] = np.__version__
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
