"""A finished run as the workflow leaves it: results, logs and each job's record (logs/jobs/)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from abacus_repro.job_record import FORMAT, write_job_record

START = 1.7e9  # 2023-11-14
TRAIN_OUTPUTS = ["results/train/base/model", "results/train/base/metrics.jsonl"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_record(
    root: Path,
    outputs: str | list[str],
    rule: str,
    inputs: list[str],
    params: dict,
    start: float,
    fingerprint: str = "code-sha256:aaa",
    wildcards: dict | None = None,
) -> None:
    """A finished job's record as run_rule writes it; input checksums for every input that exists."""
    record = {
        "format": FORMAT,
        "rule": rule,
        "wildcards": wildcards or {},
        "input": inputs,
        "output": [outputs] if isinstance(outputs, str) else outputs,
        "log": [f"logs/{rule}.log"],
        "params": {**params, "code": fingerprint},
        "threads": 1,
        "starttime": start,
        "endtime": start + 5,
        "host": "node-7",
        "external_jobid": None,
        "python": "/usr/bin/python3",
        "conda_prefix": None,
        "input_checksums": {i: f"sha256:{sha((root / i).read_bytes())}" for i in inputs if (root / i).is_file()},
    }
    write_job_record(record, root)


def fake_run(root: Path) -> Path:
    """data/in.txt -> ingest (results/ingest/docs.json) -> stats (results/stats.json); a model directory from
    rule train with a wall-clock metrics file; an undeclared evalplus work file next to an eval output."""
    files = {
        "data/in.txt": b"input",
        "results/ingest/docs.json": b'{"docs": 3}',
        "results/stats.json": b'{"read": 3}',
        "results/train/base/model/config.json": b"{}",
        "results/train/base/model/model.safetensors": b"\0weights",
        "results/train/base/metrics.jsonl": b'{"seconds": 1.5}\n',
        "results/eval/sft/humaneval/result.json": b'{"pass@1": 0.0}',
        "results/eval/sft/humaneval/work/cache.pkl": b"cache",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_record(root, "results/ingest/docs.json", "ingest_math", ["data/in.txt"], {"seed": 7, "n": 3}, START)
    write_record(root, "results/stats.json", "code_funnel", ["results/ingest/docs.json"], {}, START + 10)
    write_record(root, TRAIN_OUTPUTS, "train", ["results/ingest/docs.json"], {"seed": 7}, START + 20)
    write_record(
        root, "results/eval/sft/humaneval/result.json", "eval_code", ["results/train/base/model"], {}, START + 30
    )
    return root
