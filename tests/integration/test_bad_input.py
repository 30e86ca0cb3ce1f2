"""The bad-input battery: every case a new user has hit, fed to the command line and to the rules.

Each case asserts the exit status, one error line that names the file (or the config key) and what is wrong with no
bare traceback, and read = kept + dropped wherever records were read. The rule cases run the workflow on the micro
configuration in a scratch directory (`snakemake --directory`), up to the one rule the case is about.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
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


# --- 3. a broken .jsonl.gz names the file and what is wrong ---------------------------------------------------------

GZIP_CASES = {"truncated": "truncated gzip file", "not_gzip": "not a gzip file"}


def _broken_gzip(tmp_path: Path, kind: str) -> Path:
    lines = "".join(json.dumps({"task_id": f"HumanEval/{i}", "prompt": f"def f{i}():\n"}) + "\n" for i in range(400))
    path = tmp_path / "HumanEvalPlus.jsonl.gz"
    if kind == "truncated":  # an interrupted download: the gzip stream stops half-way
        whole = gzip.compress(lines.encode())
        path.write_bytes(whole[: len(whole) // 2])
    else:  # plain JSON lines under a .gz name
        path.write_text(lines)
    return path


@pytest.mark.parametrize("kind", sorted(GZIP_CASES))
def test_a_broken_jsonl_gz_is_named_by_the_loader_the_cli_and_the_rule(tmp_path, kind):
    from abacus_repro.errors import InputError
    from abacus_repro.io import read_jsonl

    path, problem = _broken_gzip(tmp_path, kind), GZIP_CASES[kind]
    with pytest.raises(InputError, match=problem) as raised:
        read_jsonl(path)
    assert raised.value.path == str(path)
    checked = run([*CLI, "eval", "selfcheck", "--dataset", "humaneval", "--path", str(path)])
    assert checked.returncode == 2 and f"error: {path}: {problem}" in checked.stderr, checked.stderr
    assert no_bare_traceback(checked.stderr)
    # The rule reads its data before it loads the model, so an empty model directory is enough to get there.
    (tmp_path / "model").mkdir()
    config = micro_config()
    config["eval"]["models"] = [{"name": "stub", "path": str(tmp_path / "model")}]
    config["eval"]["humaneval"]["path"] = str(path)
    result = snakemake(tmp_path, write_micro_config(tmp_path, config), "--", "results/eval/stub/humaneval/result.json")
    assert result.returncode != 0
    log = (tmp_path / "logs/eval/stub/humaneval.log").read_text()
    assert f"{path}: {problem}" in log and no_bare_traceback(log), log


# --- 4. StackExchange: an empty Posts.xml, a post type no dump defines ----------------------------------------------

QUESTION = '<row Id="1" PostTypeId="1" Score="3" AcceptedAnswerId="2" Title="Why?" Body="&lt;p&gt;q&lt;/p&gt;" />'
ANSWER = '<row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="&lt;p&gt;because&lt;/p&gt;" />'


def _posts_xml(tmp_path: Path, site: str, rows: list[str]) -> Path:
    path = tmp_path / f"{site}.stackexchange.com.Posts.xml"
    body = "".join(f"  {row}\n" for row in rows)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n{body}</posts>\n', encoding="utf-8")
    return path


def _se_check(dump: Path) -> tuple[subprocess.CompletedProcess, dict]:
    checked = run([*CLI, "text", "se-check", str(dump), "--show", "0"])
    assert checked.returncode == 0 and no_bare_traceback(checked.stderr), checked.stderr
    return checked, json.loads(checked.stdout)


def _se_rule(tmp_path: Path, dump: Path) -> tuple[dict, str]:
    config = micro_config()
    config["text"]["stackexchange"]["dumps"] = [str(dump)]
    path = write_micro_config(tmp_path, config)
    result = snakemake(tmp_path, path, "--", "results/ingest/stackexchange/stats.json")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "results/ingest/stackexchange/stats.json").read_text())
    return stats, (tmp_path / "logs/ingest/stackexchange.log").read_text()


def _adds_up(stats: dict) -> bool:
    return stats["read"] == stats["kept"] + sum(stats["dropped"].values())


def test_an_empty_posts_xml_gives_empty_outputs_and_a_warning_naming_it(tmp_path):
    dump = _posts_xml(tmp_path, "empty", [])
    warning = f"{dump}: the dump has no rows"
    checked, stats = _se_check(dump)
    assert warning in checked.stderr and stats["read"] == 0 and _adds_up(stats), checked.stderr
    stats, log = _se_rule(tmp_path, dump)
    assert warning in log and "WARNING" in log and no_bare_traceback(log), log
    assert stats["read"] == 0 and stats["kept"] == 0 and _adds_up(stats)
    for name in ("qa", "dropped"):
        assert pq.read_metadata(tmp_path / f"results/ingest/stackexchange/{name}.parquet").num_rows == 0


def test_a_post_type_no_dump_defines_is_dropped_under_its_own_reason(tmp_path):
    unknown = '<row Id="3" PostTypeId="99" Score="0" Title="New kind" Body="&lt;p&gt;x&lt;/p&gt;" />'
    answer_to_unknown = '<row Id="4" PostTypeId="2" ParentId="3" Score="0" Body="&lt;p&gt;y&lt;/p&gt;" />'
    tag_wiki = '<row Id="5" PostTypeId="5" Score="0" Body="&lt;p&gt;wiki&lt;/p&gt;" />'
    dump = _posts_xml(tmp_path, "odd", [QUESTION, ANSWER, unknown, answer_to_unknown, tag_wiki])
    for stats in (_se_check(dump)[1], _se_rule(tmp_path, dump)[0]):
        assert stats["read"] == 2 and stats["kept"] == 1 and stats["dropped"] == {"unknown_post_type": 1}
        assert _adds_up(stats)
        rows = stats["sites"]["odd.stackexchange.com"]["rows"]
        assert rows["unknown_post_type"] == 1 and rows["other_types"] == 1
        assert rows["answers_detail"]["parent_unknown_post_type"] == 1 and rows["answers_detail"]["orphan"] == 0
    dropped = pq.read_table(tmp_path / "results/ingest/stackexchange/dropped.parquet").to_pylist()
    assert [row["reason"] for row in dropped] == ["unknown_post_type"] and "PostTypeId=99" in dropped[0]["detail"]


# --- 5. a code dump: what the walk does not read is counted; a symlink loop and an empty dump are named -------------


def _permissions_deny(directory: Path) -> bool:
    """Whether chmod 000 stops this user listing a directory (not for root, which reads it anyway)."""
    try:
        os.listdir(directory)
    except PermissionError:
        return True
    return False


def _repos_with_skips(tmp_path: Path) -> Path:
    """A repos_dir with one real repository (2 .py files) and each kind of symlink and a loose top-level file."""
    repos = tmp_path / "repos"
    package = repos / "alpha" / "pkg"
    package.mkdir(parents=True)
    (repos / "alpha" / "mod.py").write_text("VALUE = 1\n")
    (package / "x.py").write_text("def f():\n    return 2\n")
    (tmp_path / "outside.py").write_text("ESCAPED = True\n")
    (repos / "alpha" / "linked.py").symlink_to(tmp_path / "outside.py")  # symlinked .py file
    (repos / "alpha" / "linkdir").symlink_to(package, target_is_directory=True)  # symlinked folder in a repo
    (repos / "beta").symlink_to(repos / "alpha", target_is_directory=True)  # symlinked repository folder
    (repos / "loose.py").write_text("TOP = 1\n")  # a file at the top: in no repository
    return repos


def _ingest_code(tmp_path: Path, code_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = micro_config()
    config["code"].update(source="repos_dir", path=str(code_path), include_repos=[])
    return snakemake(tmp_path, write_micro_config(tmp_path, config), *args, "--", "results/ingest/code/stats.json")


def test_what_a_code_dump_walk_passes_over_is_counted_by_reason(tmp_path):
    repos = _repos_with_skips(tmp_path)
    checked = run([*CLI, "code", "check", str(repos / "alpha")])
    assert checked.returncode == 0 and no_bare_traceback(checked.stderr), checked.stderr
    assert len(checked.stdout.splitlines()) == 2  # mod.py, pkg/x.py
    assert f"not checked under {repos / 'alpha'}: 2 symlink" in checked.stderr, checked.stderr
    result = _ingest_code(tmp_path, repos)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "results/ingest/code/stats.json").read_text())
    expected = {"not_regular_file": 0, "symlink": 3, "top_level_file": 1, "unreadable_dir": 0}
    assert stats["skipped"] == expected and stats["repositories"] == 1
    assert stats["files"] == sum(stats["files_per_shard"]) == 2
    log = (tmp_path / "logs/ingest/code.log").read_text()
    assert f"{repos}: not read: 3 symlink, 1 top_level_file" in log and no_bare_traceback(log), log


def test_an_unreadable_directory_in_a_code_dump_is_counted(tmp_path):
    repos = tmp_path / "repos"
    locked = repos / "alpha" / "locked"
    locked.mkdir(parents=True)
    (repos / "alpha" / "mod.py").write_text("VALUE = 1\n")
    (locked / "y.py").write_text("Y = 3\n")
    locked.chmod(0)
    try:
        if not _permissions_deny(locked):
            pytest.skip(
                "chmod 000 does not deny this user (root) reading; test_a_directory_the_walk_cannot_list_"
                "is_counted simulates the permission error"
            )
        checked = run([*CLI, "code", "check", str(repos / "alpha")])
        result = _ingest_code(tmp_path, repos)
    finally:
        locked.chmod(0o755)
    assert checked.returncode == 0 and "not checked under" in checked.stderr and "1 unreadable_dir" in checked.stderr
    assert f"{locked}: skipped, cannot list the directory" in checked.stderr, checked.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "results/ingest/code/stats.json").read_text())
    assert stats["skipped"]["unreadable_dir"] == 1 and stats["files"] == sum(stats["files_per_shard"]) == 1
    log = (tmp_path / "logs/ingest/code.log").read_text()
    assert f"{locked}: skipped, cannot list the directory" in log and "1 unreadable_dir" in log, log


def test_a_directory_the_walk_cannot_list_is_counted(tmp_path, monkeypatch):
    """The unreadable-directory case without relying on chmod (which root ignores): os.walk's listing fails."""
    from collections import Counter

    from abacus_repro.ingest.code import walk_files

    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "y.py").write_text("Y = 3\n")
    (tmp_path / "a.py").write_text("A = 1\n")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped: Counter[str] = Counter()
    assert [p.name for p in walk_files(tmp_path, skipped)] == ["a.py"]
    assert skipped == {"unreadable_dir": 1}


def test_a_symlink_loop_named_as_the_code_dump_is_called_a_loop(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    checked = run([*CLI, "code", "check", str(loop)])
    assert checked.returncode == 2 and f"error: {loop}: symlink loop" in checked.stderr, checked.stderr
    assert no_bare_traceback(checked.stderr)
    dry = _ingest_code(tmp_path, loop, "-n")  # refused before the DAG: Snakemake would call it a missing input
    assert dry.returncode != 0 and f"code.path {loop}: symlink loop" in dry.stdout + dry.stderr, dry.stderr[-2000:]


def test_an_empty_code_dump_writes_empty_outputs_and_warns_naming_it(tmp_path):
    empty = tmp_path / "no_repos"
    empty.mkdir()
    checked = run([*CLI, "code", "check", str(empty)])
    assert checked.returncode == 0 and checked.stdout == "" and f"{empty}: no Python files found" in checked.stderr
    result = _ingest_code(tmp_path, empty)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "logs/ingest/code.log").read_text()
    assert f"{empty}: no repositories or files found" in log and "WARNING" in log, log
    stats = json.loads((tmp_path / "results/ingest/code/stats.json").read_text())
    assert stats["files"] == sum(stats["files_per_shard"]) == 0 and stats["repositories"] == 0
    for shard in (tmp_path / "results/ingest/code").glob("shard-*.parquet"):
        assert pq.read_metadata(shard).num_rows == 0


# --- 9. train-launch outside a SLURM allocation --------------------------------------------------------------------


def test_train_launch_outside_an_allocation_shows_the_command_with_a_head_node_placeholder():
    from abacus_repro.errors import InputError
    from abacus_repro.pretrain.launch import LaunchPlan, launch_command

    env = {name: value for name, value in os.environ.items() if not name.startswith("SLURM_")}
    command = [*CLI, "train-launch", "--nodes", "8", "--gpus-per-node", "8", "--deepspeed"]
    shown = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0 and no_bare_traceback(shown.stderr), shown.stderr
    assert shown.stdout.startswith("srun --nodes=8") and '"--rdzv-endpoint=$HEAD_NODE:' in shown.stdout
    notes = shown.stderr.strip().splitlines()
    assert len(notes) == 1 and "SLURM allocation (salloc/sbatch)" in notes[0], shown.stderr
    # Actually starting it (what the train rule does) is refused in one line naming what is missing. The rule
    # itself needs the whole data pipeline before it gets there: too slow for this battery.
    with pytest.raises(InputError, match=r"SLURM_JOB_NODELIST: not set.*salloc/sbatch"):
        launch_command(LaunchPlan(nodes=8, procs_per_node=8), "spec.json", env={}, deepspeed=True)


def test_a_misspelt_key_is_named_in_one_line_before_any_job(tmp_path):
    config = micro_config()
    config["train"]["grad_clipp"] = 1.0
    path = write_micro_config(tmp_path, config)
    dry = snakemake(tmp_path, path, "-n")
    output = dry.stdout + dry.stderr
    assert (
        dry.returncode != 0 and "train: Additional properties are not allowed ('grad_clipp' was unexpected)" in output
    )
    assert "Failed validating" not in output, output[-3000:]  # not the section's whole schema
    assert not (tmp_path / "results").exists()


# --- a benchmark's data file of another benchmark's family is refused ----------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "file", "what", "expected"),
    [
        ("humaneval", "sanitized-mbpp.json", "is sanitized MBPP", "humaneval expects HumanEval+"),
        ("mbpp", "HumanEvalPlus-Mini.jsonl.gz", "is HumanEval+ (evalplus) data", "mbpp expects MBPP+"),
    ],
)
def test_eval_selfcheck_refuses_another_benchmarks_file(shared_data, dataset, file, what, expected):
    path = shared_data / "code_eval" / file
    checked = run([*CLI, "eval", "selfcheck", "--dataset", dataset, "--path", str(path)])
    lines = checked.stderr.strip().splitlines()
    assert checked.returncode != 0 and "pass@1" not in checked.stdout, checked.stdout + checked.stderr
    assert len(lines) == 1 and str(path) in lines[0] and what in lines[0] and expected in lines[0], checked.stderr
    assert no_bare_traceback(checked.stderr)


def test_eval_code_rule_refuses_another_benchmarks_file(tmp_path, shared_data):
    # The refusal comes before the model is loaded: any existing directory stands in for the model.
    model = tmp_path / "some-model"
    model.mkdir()
    mbpp_file = shared_data / "code_eval" / "sanitized-mbpp.json"
    config = micro_config()
    config["eval"]["models"] = [{"name": "other", "path": str(model)}]
    config["eval"]["humaneval"]["path"] = str(mbpp_file)
    path = write_micro_config(tmp_path, config)
    result = snakemake(tmp_path, path, "--", "results/eval/other/humaneval/result.json")
    assert result.returncode != 0
    log = (tmp_path / "logs/eval/other/humaneval.log").read_text()
    assert f"{mbpp_file}: is sanitized MBPP" in log and "humaneval expects HumanEval+" in log, log
    assert no_bare_traceback(log)
    assert not (tmp_path / "results/eval/other/humaneval/result.json").exists()
