"""A finished run as Snakemake leaves it: results, logs and `.snakemake/metadata` records (format 6)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

START = 1.7e9  # 2023-11-14


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_record(
    root: Path,
    output: str,
    rule: str,
    inputs: list[str],
    params: list[str],
    start: float,
    fingerprint: str = "code-sha256:aaa",
) -> None:
    """A record as Snakemake writes it; input checksums for every input that exists."""
    checksums = {i: f"sha256:{sha((root / i).read_bytes())}" for i in inputs if (root / i).is_file()}
    record = {
        "rule": rule,
        "input": inputs,
        "log": [f"logs/{rule}.log"],
        "shellcmd": None,
        "params": sorted([*params, repr(fingerprint)]),
        "code": '        "../scripts/x.py"\n',
        "record_format_version": 6,
        "conda_env": base64.b64encode(b"channels: [conda-forge]\n").decode(),
        "container_img_url": None,
        "software_stack_hash": "d41d8cd98f00b204e9800998ecf8427e",
        "job_hash": 1,
        "starttime": start,
        "endtime": start + 5,
        "incomplete": False,
        "external_jobid": None,
        "input_checksums": checksums,
    }
    meta = root / ".snakemake/metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / base64.urlsafe_b64encode(output.encode()).decode()).write_text(json.dumps(record))


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
    write_record(root, "results/ingest/docs.json", "ingest_math", ["data/in.txt"], ["7", "{'n': 3}"], START)
    write_record(root, "results/stats.json", "code_funnel", ["results/ingest/docs.json"], [], START + 10)
    for out in ["results/train/base/model", "results/train/base/metrics.jsonl"]:
        write_record(root, out, "train", ["results/ingest/docs.json"], ["7"], START + 20)
    write_record(
        root, "results/eval/sft/humaneval/result.json", "eval_code", ["results/train/base/model"], [], START + 30
    )
    return root
