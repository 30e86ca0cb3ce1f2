"""The SLURM set-up: profiles/slurm (a site-wide profile for users who have none), cluster/profile (the localhost
test cluster's), the workflow-specific profile, and the per-rule sizes that live in each config's `resources:`.
Memory/time/CPUs for every rule, GPUs for the rules that run a model, and the sbatch lines the plugin builds."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import validate

from abacus_repro.scheduling import check_resource_settings, rule_resources, rule_threads

from ..conftest import MODEL_RULES, REPO_ROOT

SLURM_PROFILE = REPO_ROOT / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = REPO_ROOT / "cluster" / "profile" / "config.yaml"
WORKFLOW_PROFILE = REPO_ROOT / "workflow" / "profiles" / "default" / "config.yaml"
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
PAPER = REPO_ROOT / "config" / "abacus-2.7b.yaml"
# Keys a site-wide profile owns; the workflow profile must not set them, or it would override the user's.
SITE_KEYS = {"executor", "jobs", "cores", "default-resources", "set-resources", "set-threads", "slurm-logdir"}


def _load_updater():
    spec = importlib.util.spec_from_file_location("update_envs", REPO_ROOT / "workflow" / "envs" / "update_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = set(_load_updater().rule_blocks())


def _yaml(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _resolved(path) -> dict:
    config = _yaml(path)
    validate(config, str(SCHEMA), set_default=True)
    return config


CONFIGS = {
    "tiny": REPO_ROOT / "config" / "config.yaml",
    "paper": PAPER,
    "micro": REPO_ROOT / "tests" / "integration" / "micro.yaml",
}


@pytest.mark.parametrize("profiles", [[SLURM_PROFILE], [LOCAL_PROFILE]], ids=["slurm", "localhost"])
def test_snakemake_and_the_plugin_accept_the_site_profiles_under_the_workflow_profile(profiles):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake.cli import get_argument_parser

    # What Snakemake does for `--profile slurm`: the named profile, then the workflow-specific one on top.
    args = get_argument_parser(profiles=[str(p.parent) for p in [*profiles, WORKFLOW_PROFILE]]).parse_args([])
    assert args.executor == "slurm"
    assert args.slurm_status_command == "squeue"
    assert {t.name for t in args.rerun_triggers} == {"MTIME", "PARAMS", "INPUT", "SOFTWARE_ENV"}
    # Sizes come from the config, so the site profiles carry none that could shadow it.
    assert not args.set_resources and not args.set_threads


def test_the_workflow_profile_sets_nothing_a_site_profile_owns():
    assert not SITE_KEYS & set(_yaml(WORKFLOW_PROFILE)), set(_yaml(WORKFLOW_PROFILE))
    for path in (SLURM_PROFILE, LOCAL_PROFILE):
        profile = _yaml(path)
        assert "set-resources" not in profile and "slurm_account" not in str(profile.get("default-resources")), path


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_rule_has_memory_runtime_and_cpus(name):
    resources = _resolved(CONFIGS[name])["resources"]
    check_resource_settings(resources, RULES)
    for rule in RULES:
        asked = rule_resources(resources, rule)
        for key in ("mem_mb", "runtime", "cpus_per_task"):
            assert isinstance(asked[key], int) and asked[key] > 0, (name, rule, key, asked)
        assert rule_threads(resources, rule) <= asked["cpus_per_task"], (name, rule)


def test_a_resources_entry_that_names_no_rule_is_refused_with_the_key():
    with pytest.raises(ValueError, match=r"resources\.code_cleen: no such rule; allowed: default, "):
        check_resource_settings({"default": {}, "code_cleen": {"mem_mb": 1}}, RULES)
    with pytest.raises(ValueError, match=r"resources\.train\.gpus: .*train\.launch"):
        check_resource_settings({"default": {}, "train": {"gpus": 8}}, RULES)


def test_paper_model_rules_get_a_gpu_and_everything_fits_a_node():
    resources = _resolved(PAPER)["resources"]
    for rule in MODEL_RULES:
        assert rule_resources(resources, rule).get("gpu", 0) >= 1, rule
    for rule in RULES - MODEL_RULES:
        assert "gpu" not in rule_resources(resources, rule), rule
    for rule in RULES:
        asked = rule_resources(resources, rule)
        assert asked["mem_mb"] <= 512000 and asked["cpus_per_task"] <= 64, (rule, asked)


@pytest.mark.parametrize("name", ["tiny", "micro"])
def test_cpu_configs_fit_a_two_cpu_node_without_gpus(name):
    resources = _resolved(CONFIGS[name])["resources"]
    for rule in RULES:
        asked = rule_resources(resources, rule)
        assert asked["cpus_per_task"] <= 2 and asked["mem_mb"] <= 8000 and "gpu" not in asked, (name, rule, asked)


class _Resources(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _sbatch(resources: dict, threads: int) -> str:
    submit = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=threads, name="rule")
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log/%j.log",
        "comment_str": "rule",
        "account": "",
        "partition": "",
        "workdir": "/work",
    }
    return submit.get_submit_command(job, params) + set_gres_string(job)


def test_sbatch_for_a_generation_rule_asks_for_one_gpu():
    resources = _resolved(PAPER)["resources"]
    call = _sbatch(rule_resources(resources, "eval_code"), threads=rule_threads(resources, "eval_code"))
    for part in ("--gpus=1", "--cpus-per-task=16", "--mem 64000", "-t 480"):
        assert part in call, (part, call)


def test_sbatch_for_paper_scale_training_spans_the_configured_nodes():
    config = _resolved(PAPER)
    launch = config["train"]["launch"]
    nodes, gpus = launch["nodes"], launch["gpus_per_node"]
    assert nodes > 1 and gpus > 0
    # What the train rule sets from train.launch (workflow/rules/pretrain.smk) on top of the config's sizes.
    from_rule = {
        "nodes": nodes,
        "gpus": nodes * gpus,
        "gres": f"gpu:{gpus}",
        "mpi": "srun",
        "tasks": nodes,
        "tasks_per_gpu": 0,
    }
    asked = {**rule_resources(config["resources"], "train"), **from_rule}
    call = _sbatch(asked, threads=rule_threads(config["resources"], "train"))
    for part in (
        f"--nodes={nodes}",
        f"--ntasks={nodes}",
        f"--gres=gpu:{gpus}",
        "--cpus-per-task=64",
        "--mem 480000",
        "-t 10080",
    ):
        assert part in call, (part, call)
    assert "--ntasks-per-gpu" not in call and "--gpus=" not in call, call
    from abacus_repro.pretrain.launch import plan_from_resources
    from abacus_repro.settings import LaunchSettings

    plan = plan_from_resources(from_rule, LaunchSettings.model_validate(config["train"]["launch"]))
    assert (plan.nodes, plan.procs_per_node) == (nodes, gpus)
