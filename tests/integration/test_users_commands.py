"""The users' command, typed as the README gives it, from the repository root of a fresh clone with no profile
installed anywhere: `snakemake --profile slurm -n` finds the repository's own `slurm` profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO_ROOT


def test_snakemake_profile_slurm_dry_run_needs_no_set_up(tmp_path):
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        XDG_CONFIG_HOME=str(tmp_path / "no-profiles"),
        HOME=str(tmp_path / "home"),
    )
    result = subprocess.run(
        ["snakemake", "--profile", "slurm", "-n"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "Using profiles slurm and workflow specific profile" in log
    assert "This was a dry-run" in log or "Nothing to be done" in log  # a checkout that already ran it
