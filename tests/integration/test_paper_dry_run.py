"""The paper-scale run as users type it, dry: `snakemake -n --profile slurm --configfile config/abacus-2.7b.yaml`.

The profile is found where Snakemake looks for a user's `slurm` profile (XDG_CONFIG_HOME/snakemake/slurm, the
documented set-up step copies profiles/slurm there). The config is the paper config with only its absolute paths
moved under a scratch directory, where each exists as a placeholder (abacus_repro.dryrun). The dry run runs from
the repository root with --forceall (results of a local tiny run must not hide jobs) and --nolock.
"""

from __future__ import annotations

import re
import shutil

import pytest

from abacus_repro import dryrun
from abacus_repro.cli import main as cli_main
from abacus_repro.config import load_config
from abacus_repro.settings import VALIDATION_SOURCES

from ..conftest import MODEL_RULES, REPO_ROOT

PAPER_CONFIG = REPO_ROOT / "config" / "abacus-2.7b.yaml"
# Training holds GPUs too, from train.launch.
GPU_RULES = MODEL_RULES | {"train"}
# Jobs that run nothing (the default target), so nothing is submitted for them.
NO_ACTION_RULES = {"all"}


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    root = tmp_path_factory.mktemp("paper")
    xdg = root / "xdg"
    shutil.copytree(REPO_ROOT / "profiles" / "slurm", xdg / "snakemake" / "slurm")
    configfile = dryrun.write_placeholder_config(PAPER_CONFIG, root / "scratch")
    output = dryrun.run_dry_run(
        configfile, root / "scratch", extra_args=["--profile", "slurm"], env={"XDG_CONFIG_HOME": str(xdg)}
    )
    counts, jobs = dryrun.parse_job_counts(output), dryrun.parse_jobs(output)
    dryrun.check_jobs_match_counts(jobs, counts)
    return {"output": output, "counts": counts, "jobs": jobs, "config": load_config(configfile)}


def test_the_dag_builds_with_the_users_slurm_profile_and_only_the_given_config(paper_dry_run):
    output = paper_dry_run["output"]
    assert re.search(r"^Using profiles? slurm\b", output, re.MULTILINE), output[:2000]
    assert "This was a dry-run" in output
    # --configfile X is X plus the schema's defaults: the tiny config/config.yaml is not merged underneath.
    assert "is extended by additional config" not in output
    assert "config/config.yaml" not in re.search(r"Config file\(s\): (.*)", output).group(1)


def test_job_counts_follow_the_config(paper_dry_run):
    counts, config, jobs = paper_dry_run["counts"], paper_dry_run["config"], paper_dry_run["jobs"]
    models = len(config["eval"]["models"])
    # Continuing the published checkpoint: no base phase; cosine, anneal and SFT train.
    phases = ["cosine", "anneal"] if config["model"]["pretrained"] else ["base", "cosine", "anneal"]
    expected = {
        "code_clean": config["shards"]["code"],
        "code_minhash": config["shards"]["code"],
        "code_finish": config["shards"]["code"],
        "code_lsh": config["code"]["near_dedup"]["bucket_jobs"],
        "mixture": len(phases),
        "tokenize": len(phases) + 1,
        "train": len(phases) + 1,
        "decontaminate": 2,  # the pretraining documents and the SFT data set
        "eval_code": 2 * models,  # HumanEval+ and MBPP+
        "eval_infill": models,
        "eval_livecodebench": models,
        "eval_general": models,
        # The held-out validation split: one job per source, each tokenized once.
        "validation_split": len(VALIDATION_SOURCES),
        "tokenize_validation": len(VALIDATION_SOURCES),
    }
    assert counts["code_clean"] == 512
    for rule, count in expected.items():
        assert counts.get(rule) == count, (rule, counts.get(rule), count)
    # Everything else runs once.
    assert {rule: n for rule, n in counts.items() if rule not in expected and n != 1} == {}
    trained = sorted(job["wildcards"] for job in jobs if job["rule"] == "train")
    assert trained == sorted(f"phase={p}" for p in [*phases, "sft"])


def test_every_job_asks_for_memory_and_time(paper_dry_run):
    for job in paper_dry_run["jobs"]:
        if job["rule"] in NO_ACTION_RULES:
            continue
        resources = job["resources"]
        for key in ("mem_mb", "runtime", "cpus_per_task"):
            assert int(resources.get(key, 0)) > 0, (job["rule"], job["wildcards"], key, resources)


def test_exactly_the_rules_that_run_a_model_ask_for_gpus(paper_dry_run):
    config = paper_dry_run["config"]
    with_gpus = {job["rule"] for job in paper_dry_run["jobs"] if dryrun.job_gpus(job["resources"])}
    present = set(paper_dry_run["counts"])
    assert GPU_RULES <= present, GPU_RULES - present
    assert with_gpus == GPU_RULES, {"missing a GPU": GPU_RULES - with_gpus, "idle GPU": with_gpus - GPU_RULES}
    launch = config["train"]["launch"]
    for job in paper_dry_run["jobs"]:
        if job["rule"] == "train":
            resources = job["resources"]
            assert int(resources["nodes"]) == launch["nodes"]
            assert dryrun.job_gpus(resources) == launch["nodes"] * launch["gpus_per_node"]
            assert resources["gres"] == f"gpu:{launch['gpus_per_node']}"


def test_plan_reports_the_same_dag_and_the_paper_arithmetic(paper_dry_run, capsys):
    import json

    assert cli_main(["plan", "--configfile", str(PAPER_CONFIG), "--json", "--tokens-per-gpu-second", "4000"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["jobs"] == paper_dry_run["counts"]
    phases = {p["phase"]: p for p in plan["phases"]}
    assert abs(phases["cosine"]["steps"] - 95e9 / (4 * 9 * 64 * 4096)) < 1
    assert phases["cosine"]["gpu_hours"] == pytest.approx(95e9 / 4000 / 3600)
    # Non-training GPU rules: GPUs x the wall time their jobs reserve, from the dry run's own resources.
    judge = next(job["resources"] for job in paper_dry_run["jobs"] if job["rule"] == "text_judge")
    assert plan["reserved_gpu_hours"]["text_judge"] == pytest.approx(
        int(judge["runtime"]) / 60 * dryrun.job_gpus(judge)
    )
    assert "train" not in plan["reserved_gpu_hours"]
    assert any("tokens per GPU-second" in a for a in plan["assumptions"])
