"""The paper-scale rehearsal through the users' own command on a real one-node SLURM cluster on localhost.

In a copy of the repository, with cluster/profile installed as the user's site-wide `slurm` profile (a temporary
XDG_CONFIG_HOME, the one documented set-up step), the test types
`snakemake --profile slurm --configfile config/rehearsal.yaml`. cluster/slurm-localhost.sh brings up munged,
slurmctld and slurmd from Debian's packages (in a network namespace with only loopback); every job of the DAG is
submitted with sbatch by the SLURM executor plugin, runs under slurmd, and is polled with squeue. SLURM's own record
of finished jobs (jobcomp/filetxt) is the evidence that each job went through SLURM with the config's memory, wall
time and CPUs. Needs root (daemons, a network namespace); CI
runs as root and installs the packages (`apt-get install -y --no-install-recommends munge slurmctld slurmd
slurm-client`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from abacus_repro.config import load_config
from abacus_repro.scheduling import rule_resources

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.integration

CLUSTER = REPO_ROOT / "cluster" / "slurm-localhost.sh"
SITE_PROFILE = REPO_ROOT / "cluster" / "profile"
REHEARSAL = "config/rehearsal.yaml"
# The users' command, verbatim (run from the repository root).
USERS_COMMAND = ["snakemake", "--profile", "slurm", "--configfile", REHEARSAL]
STATE_DIR = Path(os.environ.get("ABACUS_SLURM_DIR", "/run/abacus-slurm"))
NETNS = Path("/run/netns") / os.environ.get("ABACUS_SLURM_NETNS", "abacus-slurm")
SLURM_COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
INSTALL = "apt-get install -y --no-install-recommends munge slurmctld slurmd slurm-client"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def _missing_commands() -> list[str]:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd, path=path) is None]


def _cluster(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _checkout(target: Path) -> Path:
    """This working tree as a fresh clone would have it (tracked and untracked files git does not ignore)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO_ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        source = REPO_ROOT / rel
        if source.is_symlink():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).symlink_to(os.readlink(source))
        elif source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


def _install_site_profile(checkout: Path, xdg: Path) -> Path:
    """A user's own site-wide `slurm` profile standing in for the repository's (README: remove the `slurm` link so
    the name finds ~/.config/snakemake/slurm): the workflow's sizes must survive it."""
    (checkout / "slurm").unlink(missing_ok=True)
    shutil.copytree(SITE_PROFILE, xdg / "snakemake" / "slurm")
    return xdg


def _snakemake_in_cluster(checkout: Path, xdg: Path, *extra: str) -> subprocess.CompletedProcess:
    """The users' command from the repository root, inside the cluster's namespace."""
    cmd = [str(CLUSTER), "exec", "--", *USERS_COMMAND, *extra]
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", XDG_CONFIG_HOME=str(xdg)
    )
    return subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, env=env, timeout=2400, check=False)


def _jobcomp(path: Path) -> dict[str, dict[str, str]]:
    """SLURM's record of finished jobs (jobcomp/filetxt): job id -> fields."""
    records = {}
    for line in path.read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields:
            records[fields["JobId"]] = fields
    return records


def _minutes(limit: str) -> int:
    """A SLURM time limit as minutes: jobcomp writes plain minutes, other tools [D-]HH:MM:SS."""
    if limit.isdigit():
        return int(limit)
    days, _, clock = limit.rpartition("-")
    hours, minutes, _seconds = (int(part) for part in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes


def _job_stats(log: str) -> Counter:
    """Snakemake's own job table at the start of the run: rule -> jobs."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = Counter()
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "all"):
            counts[parts[0]] = int(parts[1])
    return counts


@dataclass
class SlurmRun:
    workdir: Path
    log: str
    rerun_log: str
    submitted: dict[str, tuple[str, Path]]  # SLURM job id -> (rule, kept SLURM log)
    jobcomp: dict[str, dict[str, str]]
    run_id: str
    up_again: subprocess.CompletedProcess
    down_again: subprocess.CompletedProcess | None
    torn_down: bool


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> SlurmRun:
    missing = _missing_commands()
    if os.geteuid() != 0 and missing:
        pytest.skip(
            f"SLURM is not installed ({', '.join(missing)} missing) and this is not root, so it cannot "
            f"be installed or started here; as root: {INSTALL}"
        )
    was_up = _cluster("status").returncode == 0
    up = _cluster("up")
    if up.returncode != 0:
        pytest.fail(f"cluster/slurm-localhost.sh up failed:\n{up.stdout}\n{up.stderr}")
    workdir = _checkout(tmp_path_factory.mktemp("slurm-run"))
    xdg = _install_site_profile(workdir, tmp_path_factory.mktemp("xdg"))
    saved = tmp_path_factory.mktemp("slurm-state")
    try:
        up_again = _cluster("up")
        result = _snakemake_in_cluster(workdir, xdg)
        log = result.stdout + result.stderr
        if result.returncode != 0:
            logs = "\n".join(
                f"== {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
            )
            pytest.fail(f"workflow through SLURM failed:\n{log[-8000:]}\n{logs[-12000:]}")
        rerun = _snakemake_in_cluster(workdir, xdg, "--dry-run")
        for name in ("jobcomp.log", "slurmctld.log", "slurmd.log"):
            if (STATE_DIR / "log" / name).is_file():
                shutil.copy(STATE_DIR / "log" / name, saved / name)
    finally:
        down = down_again = None
        if not was_up:  # a cluster someone started by hand is left running
            down = _cluster("down")
            down_again = _cluster("down")
    assert down is None or down.returncode == 0, down.stderr
    submitted = {}
    for match in SUBMITTED.finditer(log):
        slurm_log = Path(match.group(3))
        rule = next(part for part in slurm_log.parts if part.startswith("rule_"))[len("rule_") :]
        submitted[match.group(2)] = (rule, slurm_log)
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    return SlurmRun(
        workdir,
        log,
        rerun.stdout + rerun.stderr,
        submitted,
        _jobcomp(saved / "jobcomp.log"),
        run_id,
        up_again,
        down_again,
        torn_down=not was_up,
    )


def test_every_job_of_the_dag_was_submitted_to_slurm(slurm_run):
    planned = _job_stats(slurm_run.log)
    assert sum(planned.values()) >= 30, planned
    submitted = Counter(rule for rule, _ in slurm_run.submitted.values())
    assert submitted == planned, f"planned {dict(planned)}, submitted through SLURM {dict(submitted)}"
    # Nothing ran in the Snakemake process itself (the target rule `all` runs no code).
    local = set(re.findall(r"^localrule (\w+):", slurm_run.log, re.MULTILINE)) - {"all"}
    assert not local, f"rules run outside SLURM: {local}"


def test_slurm_recorded_every_job_as_completed_on_the_node(slurm_run):
    for job_id, (rule, _) in slurm_run.submitted.items():
        record = slurm_run.jobcomp.get(job_id)
        assert record, f"SLURM has no record of job {job_id} ({rule})"
        assert record["JobState"] == "COMPLETED", (rule, record)
        assert record["ExitCode"] == "0:0", (rule, record)
        assert record["NodeList"] == "localhost" and record["Partition"] == "local", record
        assert record["Name"] == slurm_run.run_id, (rule, record["Name"])  # the plugin names jobs by its run


def test_every_job_got_the_configs_memory_time_and_cpus(slurm_run):
    # The sizes come from the rehearsal config's resources:, through the user's own site profile. A rule without
    # mem_mb would show the whole node's memory here.
    resources = load_config(slurm_run.workdir / REHEARSAL)["resources"]
    for job_id, (rule, _) in slurm_run.submitted.items():
        record = slurm_run.jobcomp[job_id]
        tres = dict(item.split("=", 1) for item in record["Tres"].split(","))
        wanted = rule_resources(resources, rule)
        assert tres["mem"] == f"{wanted['mem_mb']}M", (rule, record["Tres"])
        assert int(tres["cpu"]) == wanted["cpus_per_task"], (rule, record["Tres"])
        assert _minutes(record["TimeLimit"]) == wanted["runtime"], (rule, record["TimeLimit"])


def test_each_rule_ran_inside_its_slurm_job(slurm_run):
    # The profile keeps every job's SLURM log: the job step's Snakemake ran exactly that rule there.
    for job_id, (rule, slurm_log) in slurm_run.submitted.items():
        assert slurm_log.name == f"{job_id}.log" and slurm_log.is_file(), slurm_log
        text = slurm_log.read_text(errors="replace")
        assert f"(Rule: {rule})" in text and "--executor slurm-jobstep" in text, (rule, text[-2000:])
        assert slurm_log.is_relative_to(slurm_run.workdir / "logs" / "slurm")


def test_outputs_exist_and_funnels_add_up(slurm_run):
    workdir = slurm_run.workdir
    for rel in [
        "results/code/stats.json",
        "results/text/stats.json",
        "results/mixture/stats.json",
        "results/eval/summary.json",
        "results/export/Modelfile",
        "results/provenance/manifest.json",
    ]:
        assert (workdir / rel).is_file(), rel
    for phase in ["cosine", "anneal", "sft"]:  # from a checkpoint: no base phase
        assert (workdir / f"results/train/{phase}/model/config.json").is_file(), phase
    stats = json.loads((workdir / "results/code/stats.json").read_text())
    assert stats["read"] > 0 and stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    manifest = json.loads((workdir / "results/provenance/manifest.json").read_text())
    rules = {entry["path"]: entry["rule"] for entry in manifest["outputs"]}
    assert rules["results/code/stats.json"] == "code_funnel"


def test_a_second_run_through_the_profile_has_nothing_to_do(slurm_run):
    assert "Nothing to be done" in slurm_run.rerun_log, slurm_run.rerun_log[-3000:]


def test_bring_up_and_tear_down_are_idempotent_and_clean(slurm_run):
    assert slurm_run.up_again.returncode == 0 and "already up" in slurm_run.up_again.stderr, slurm_run.up_again
    if not slurm_run.torn_down:
        pytest.skip("the cluster was already up before the test and is left running")
    assert slurm_run.down_again.returncode == 0, slurm_run.down_again.stderr
    assert not NETNS.exists(), "network namespace left behind"
    assert not STATE_DIR.exists(), "state directory left behind"
    assert not Path("/etc/slurm/slurm.conf").exists(), "/etc/slurm/slurm.conf left behind"
    daemons = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(STATE_DIR / "slurm.conf") not in daemons, "a slurm daemon is still running"


def test_cluster_script_names_the_packages_when_they_are_missing(tmp_path):
    # PATH without the SLURM and munge binaries: `up` must stop with the install command, before touching anything.
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("id", "dirname", "cat", "grep", "sed"):
        found = shutil.which(tool)
        if found:
            (empty / tool).symlink_to(found)
    env = {"PATH": str(empty), "ABACUS_SLURM_DIR": str(tmp_path / "state"), "ABACUS_SLURM_NETNS": "abacus-none"}
    result = subprocess.run(["/bin/bash", str(CLUSTER), "up"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode != 0
    message = result.stderr
    if os.geteuid() != 0:
        assert "must run as root" in message
    else:
        assert "missing commands" in message and "apt-get install" in message and "slurmctld" in message, message
    assert not (tmp_path / "state").exists()


def test_the_rehearsal_took_the_paper_path(slurm_run):
    """What only the paper path does, each seen in the rehearsal's own outputs."""
    workdir = slurm_run.workdir
    # The checkpoint in MiniCPM-2B's published layout, loaded through init_model with its own tokenizer.
    assert (workdir / "results/rehearsal/MiniCPM-2B-layout/tokenizer.model").is_file()
    assert json.loads((workdir / "results/model/init/config.json").read_text())["model_type"] == "minicpm"
    # Judge and rewriter through the openai backend, against the server their own jobs started.
    text = json.loads((workdir / "results/text/stats.json").read_text())
    assert text["judge"]["judge"].startswith("openai:") and text["judge"]["constraint"] == "json_object"
    assert text["classifier"]["labels_informative"] is False  # an untrained judge: the stats say so
    assert "llama_cpp.server" in (workdir / "logs/text/judge.server.log").read_text()
    semi = json.loads((workdir / "results/sft/semi_instruct.stats.json").read_text())
    assert semi["rewriter"].startswith("llm:openai:") and semi["read"] == semi["kept"] + sum(semi["dropped"].values())
    # Every phase under DeepSpeed ZeRO-2 with 2 ranks; the anneal phase continued the cosine optimizer.
    for phase in ("cosine", "anneal", "sft"):
        state = json.loads((workdir / f"results/train/{phase}/model/trainer_state.json").read_text())
        assert state["world_size"] == 2, phase
        assert (workdir / f"results/train/{phase}/state/pytorch_model").is_dir(), phase  # DeepSpeed's layout
    anneal = json.loads((workdir / "results/train/anneal/model/trainer_state.json").read_text())
    assert anneal["optimizer_state_from"] == "cosine"
    # Exported and evaluated.
    assert (workdir / "results/export/model-Q4_K_M.gguf").is_file()
    assert json.loads((workdir / "results/eval/summary.json").read_text())
