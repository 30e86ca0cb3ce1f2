"""The catalog convention: `snakemake --directory .test` from the repository root plans the whole workflow on
.test/config/config.yaml (a dry run; its paths are relative to .test/, the working directory)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from abacus_repro.dryrun import parse_job_counts

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_dot_test_plans_every_stage():
    # --forceall: results of an earlier .test run must not hide jobs; --nolock: another run may hold .test/.
    cmd = [sys.executable, "-m", "snakemake", "-n", "--directory", ".test", "--cores", "2", "--forceall", "--nolock"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # .test's own configuration, its inputs found from .test/ (config/config.yaml names data/samples/...).
    assert "input: ../data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml" in result.stdout
    counts = parse_job_counts(result.stdout)
    # Every stage down to the default target: four training phases (base, cosine, anneal, SFT), two code
    # benchmarks for the one model, export and provenance.
    assert counts["train"] == 4 and counts["eval_code"] == 2
    for rule in ("all", "decontaminate", "mixture", "eval_summary", "export_modelfile", "provenance"):
        assert counts.get(rule), (rule, counts)
