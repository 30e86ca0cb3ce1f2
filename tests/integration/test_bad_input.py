"""The bad-input battery: every case a new user has hit, fed to the command line and to the rules.

Each case asserts the exit status, one error line that names the file (or the config key) and what is wrong with no
bare traceback, and read = kept + dropped wherever records were read. The rule cases run the workflow on the micro
configuration in a scratch directory (`snakemake --directory`), up to the one rule the case is about.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO_ROOT, micro_config, write_micro_config

CLI = [sys.executable, "-m", "abacus_repro.cli"]


def run(cmd: list[str], cwd: Path = REPO_ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def snakemake(workdir: Path, config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO_ROOT / "workflow/Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
            "--cores",
            "2",
            *args,
        ],
        cwd=workdir,
        timeout=timeout,
    )


def no_bare_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text


# --- 1. a config that cannot work is refused before any job runs ---------------------------------------------------

CONFIG_CASES = {
    "shares": (("mixture", "shares", "text"), 0.3, "mixture.shares: must sum to 1"),
    "sft_shares": (("mixture", "sft_shares"), {"code": 0.6, "nl": 0.6}, "mixture.sft_shares: must sum to 1"),
    "phase_too_short": (("mixture", "tokens", "anneal"), 100, "mixture.tokens.anneal (100) is less than one"),
    "lr_order": (("train", "schedule", "lr_min"), 1.0, "train.schedule needs lr_final <= lr_min <= lr_peak"),
    "source_without_path": (("code", "source"), "repos_dir", "code.source repos_dir needs code.path"),
    "modelfile_type_not_exported": (("export", "modelfile_from"), "Q8_0", "export.modelfile_from Q8_0 is not among"),
}


def _set(config: dict, keys: tuple[str, ...], value) -> None:
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_config_that_cannot_work_is_refused_before_any_job(tmp_path, case):
    keys, value, message = CONFIG_CASES[case]
    config = micro_config()
    _set(config, keys, value)
    path = write_micro_config(tmp_path, config)
    dry = snakemake(tmp_path, path, "-n")
    assert dry.returncode != 0 and message in dry.stdout + dry.stderr, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    plan = run([*CLI, "plan", "--configfile", str(path)])
    assert plan.returncode != 0 and message in plan.stderr and no_bare_traceback(plan.stderr), plan.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_line_lenght: 10", "'max_line_lenght' was unexpected"),
        ("max_line_length: many", "code.max_line_length: 'many' is not of type 'integer'"),
    ],
)
def test_code_check_validates_its_config_like_the_workflow(tmp_path, line, message):
    config = micro_config()
    path = write_micro_config(tmp_path, config)
    text = path.read_text().replace("code:\n", f"code:\n  {line}\n", 1)
    path.write_text(text)
    target = REPO_ROOT / "src/abacus_repro/io.py"
    checked = run([*CLI, "code", "check", "--config", str(path), str(target)])
    assert checked.returncode == 2 and message in checked.stderr and no_bare_traceback(checked.stderr)
    assert str(path) in checked.stderr


# --- 7. a failing rule says why in its own log ----------------------------------------------------------------------


def test_a_failing_rule_writes_its_reason_to_its_log(tmp_path):
    not_a_directory = tmp_path / "repos.txt"  # exists, so the DAG builds; the job finds it is not a directory
    not_a_directory.write_text("not repositories\n")
    config = micro_config()
    config["code"].update(source="repos_dir", path=str(not_a_directory))
    path = write_micro_config(tmp_path, config)
    result = snakemake(tmp_path, path, "--", "results/ingest/code/stats.json")
    assert result.returncode != 0
    log = (tmp_path / "logs/ingest/code.log").read_text()
    assert str(not_a_directory) in log and "code.path must be a directory" in log, log
    assert no_bare_traceback(log)


def test_yaml_config_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(micro_config()) + "code: [unclosed\n")
    plan = run([*CLI, "plan", "--configfile", str(path)])
    assert plan.returncode != 0 and str(path) in plan.stderr and "line " in plan.stderr, plan.stderr
    assert no_bare_traceback(plan.stderr)
