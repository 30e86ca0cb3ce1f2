"""The evaluation rules alone, on a model given by path: every benchmark job runs and summary.md has its row.

The model is a toy MiniCPM made here, so no earlier stage runs: this checks the rules' contract (inputs,
params, outputs, logs) and evaluating "any model" by path, including LiveCodeBench on the hand-written
release-format file in tests/integration/data/. A second model (and a hub id) is checked by a dry run: the
same jobs, once per model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO_ROOT, micro_config, shared_data_dir
from ..unit.evaluate_fixtures import build_tiny_model

pytestmark = pytest.mark.integration


def _snakemake(workdir: Path, config_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "workflow/Snakefile"),
           "--directory", str(workdir), "--configfile", str(config_path), "--cores", "2",
           "results/eval/summary.json", *extra]  # fmt: skip
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)


def _config(workdir: Path, models: list[dict]) -> Path:
    config = micro_config(absolute_inputs=False)
    config["eval"] = {
        "max_new_tokens": 16,
        "batch_size": 4,
        "models": models,
        "humaneval": {"path": "{shared_data}/code_eval/HumanEvalPlus-Mini.jsonl.gz", "limit": 2},
        "mbpp": {"path": "{shared_data}/code_eval/sanitized-mbpp.json", "limit": 2},
        "infill": {"max_problems": 2, "max_spans_per_problem": 1, "max_spans": 2, "max_new_tokens": 8},
        "livecodebench": {
            "path": str(REPO_ROOT / "tests/integration/data/livecodebench_sample.jsonl"),
            "limit": 3,
            "timeout_s": 1,
        },
        "general": {"tasks": ["arc_easy", "gsm8k"], "limit": 2, "max_gen_toks": 8},
    }
    config_path = workdir / f"config-{len(models)}.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return config_path


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory) -> Path:
    if not shared_data_dir().is_dir():
        pytest.skip("shared data not found (set ABACUS_SHARED_DATA)")
    workdir = tmp_path_factory.mktemp("eval-rules")
    minicpm = build_tiny_model(workdir / "models" / "minicpm", chat=False, arch="minicpm")
    result = _snakemake(workdir, _config(workdir, [{"name": "toy-minicpm", "path": str(minicpm)}]))
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"evaluation rules failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir


def test_every_benchmark_runs(eval_run):
    summary = json.loads((eval_run / "results/eval/summary.json").read_text())
    assert list(summary) == ["toy-minicpm"]
    for name, benchmarks in summary.items():
        for key in ("humaneval", "humaneval_plus", "mbpp", "livecodebench", "arc_easy", "gsm8k"):
            assert benchmarks[key]["status"] == "ok", (name, key, benchmarks[key])
            assert len(benchmarks[key]["data_sha256"]) == 64 and benchmarks[key]["n"] > 0
        assert benchmarks["mbpp_plus"]["status"] == "skipped"  # Google's file has no MBPP+ tests
        assert benchmarks["livecodebench"]["n"] == 3
    result = json.loads((eval_run / "results/eval/toy-minicpm/livecodebench/result.json").read_text())
    assert result["prompt_style"] == "base" and result["dataset"]["window"] == ["2024-01-01", "2024-09-30"]


def test_tables_have_our_row_above_the_published_rows(eval_run):
    table = (eval_run / "results/eval/summary.md").read_text()
    for heading in ("## Code generation", "## General language ability", "## Benchmarks"):
        assert heading in table
    lines = table.splitlines()
    ours = [i for i, line in enumerate(lines) if line.startswith("| toy-minicpm ")]
    abacus = [i for i, line in enumerate(lines) if line.startswith("| 珠算 ")]
    # The two seed tables, then the infilling table (no published rows).
    assert len(ours) == 3 and len(abacus) == 2 and ours[0] < abacus[0] and ours[1] < abacus[1] < ours[2]
    assert (eval_run / "results/eval/summary.png").stat().st_size > 0
    for log in ("humaneval", "mbpp", "livecodebench", "general"):
        assert (eval_run / "logs/eval/toy-minicpm" / f"{log}.log").stat().st_size > 0


def test_more_models_get_the_same_jobs(eval_run):
    # A second model by path and one by hub id: the dry run plans the same five jobs for each new model.
    models = [
        {"name": "toy-minicpm", "path": str(eval_run / "models" / "minicpm")},
        {"name": "other", "path": str(eval_run / "models" / "minicpm")},
        {"name": "DeepSeek-Coder-1.3B-Instruct", "path": "deepseek-ai/deepseek-coder-1.3b-instruct"},
    ]
    result = _snakemake(eval_run, _config(eval_run, models), "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split() for line in result.stdout.splitlines() if line.startswith("eval_"))
    assert counts == {
        "eval_code": "4",
        "eval_infill": "2",
        "eval_livecodebench": "2",
        "eval_general": "2",
        "eval_summary": "1",
    }


@pytest.mark.parametrize(("benchmark", "rule"), [("mbpp", "eval_code"), ("general", "eval_general")])
def test_a_benchmarks_settings_rerun_only_its_own_job(eval_run, benchmark, rule):
    # Each evaluation rule gets only its benchmark's settings: a new limit re-runs that job and the summary.
    config_path = _config(eval_run, [{"name": "toy-minicpm", "path": str(eval_run / "models" / "minicpm")}])
    config = yaml.safe_load(config_path.read_text())
    config["eval"][benchmark]["limit"] = 1
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    result = _snakemake(eval_run, config_path, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split() for line in result.stdout.splitlines() if line.startswith("eval_"))
    assert counts == {rule: "1", "eval_summary": "1"}
