"""profiles/slurm (paper scale) and cluster/profile (the localhost test cluster's scale): valid for Snakemake and
the SLURM executor plugin, memory/time/CPUs for every rule, GPUs for the rules that run a model, and the sbatch
lines the plugin builds from them."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import yaml

from ..conftest import REPO_ROOT

SLURM_PROFILE = REPO_ROOT / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = REPO_ROOT / "cluster" / "profile" / "config.yaml"
# Rules that run a model: the judge, Semi-Instruct generation, embedding models, and evaluation by generation.
MODEL_RULES = {"text_judge", "text_classifier_train", "text_classifier_apply", "sft_semi_instruct", "sft_semdedup",
               "eval_code", "eval_livecodebench", "eval_general"}
# Set by the train rule from config train.launch, so the profile must not override them.
LAUNCH_KEYS = {"nodes", "gpu", "gpus", "gres", "tasks", "tasks_per_gpu", "mpi"}


def _load_updater():
    spec = importlib.util.spec_from_file_location("update_envs", REPO_ROOT / "envs" / "update_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = set(_load_updater().rule_blocks())


def _profile(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("profiles", [[SLURM_PROFILE], [SLURM_PROFILE, LOCAL_PROFILE]], ids=["slurm", "localhost"])
def test_snakemake_and_the_plugin_accept_the_profiles(profiles):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(p.parent) for p in profiles]).parse_args([])
    assert args.executor == "slurm"
    assert args.slurm_status_command == "squeue"
    assert set(args.set_resources) == RULES
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(args.default_resources)


@pytest.mark.parametrize("path", [SLURM_PROFILE, LOCAL_PROFILE], ids=["slurm", "localhost"])
def test_every_rule_has_memory_runtime_and_cpus(path):
    resources = _profile(path)["set-resources"]
    assert set(resources) == RULES, {"missing": RULES - set(resources), "unknown": set(resources) - RULES}
    for rule, values in resources.items():
        for key in ("mem_mb", "runtime", "cpus_per_task"):
            assert isinstance(values.get(key), int) and values[key] > 0, (path.name, rule, key, values)


def test_no_account_is_set_because_the_plugin_validates_it_against_accounting():
    for path in (SLURM_PROFILE, LOCAL_PROFILE):
        profile = _profile(path)
        for values in [profile.get("default-resources", {}), *profile.get("set-resources", {}).values()]:
            assert "slurm_account" not in values, path


def test_model_rules_get_gpus_and_train_gets_its_launch_from_config():
    resources = _profile(SLURM_PROFILE)["set-resources"]
    assert MODEL_RULES <= RULES, MODEL_RULES - RULES
    for rule in MODEL_RULES:
        assert resources[rule].get("gpu", 0) >= 1 and resources[rule].get("tasks") == 1, (rule, resources[rule])
    assert not LAUNCH_KEYS & set(resources["train"]), resources["train"]
    # Nothing asks for more than a 512 GB, 64-core node.
    for rule, values in resources.items():
        assert values["mem_mb"] <= 512000 and values["cpus_per_task"] <= 64, rule


def test_localhost_layer_fits_a_two_cpu_node_without_gpus():
    for rule, values in _profile(LOCAL_PROFILE)["set-resources"].items():
        assert values["cpus_per_task"] <= 2 and values["mem_mb"] <= 8000, (rule, values)
        assert not LAUNCH_KEYS & set(values), (rule, values)


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
    params = {"run_uuid": "run", "slurm_logfile": "log/%j.log", "comment_str": "rule", "account": "",
              "partition": "", "workdir": "/work"}
    return submit.get_submit_command(job, params) + set_gres_string(job)


def test_sbatch_for_a_generation_rule_asks_for_one_gpu():
    resources = _profile(SLURM_PROFILE)["set-resources"]["eval_code"]
    call = _sbatch(resources, threads=_profile(SLURM_PROFILE)["set-threads"]["eval_code"])
    for part in ("--gpus=1", "--ntasks-per-gpu=1", "--cpus-per-task=16", "--mem 64000", "-t 480"):
        assert part in call, (part, call)


def test_sbatch_for_paper_scale_training_spans_the_configured_nodes():
    launch = yaml.safe_load((REPO_ROOT / "config/abacus-2.7b.yaml").read_text())["train"]["launch"]
    nodes, gpus = launch["nodes"], launch["gpus_per_node"]
    assert nodes > 1 and gpus > 0
    # What the train rule sets from train.launch (workflow/rules/pretrain.smk), then this profile's numbers.
    from_rule = {"nodes": nodes, "gpus": nodes * gpus, "gres": f"gpu:{gpus}", "mpi": "srun", "tasks": nodes,
                 "tasks_per_gpu": 0}
    profile = _profile(SLURM_PROFILE)
    call = _sbatch({**from_rule, **profile["set-resources"]["train"]}, threads=profile["set-threads"]["train"])
    for part in (f"--nodes={nodes}", f"--ntasks={nodes}", f"--gres=gpu:{gpus}", "--cpus-per-task=64",
                 "--mem 480000", "-t 10080"):
        assert part in call, (part, call)
    assert "--ntasks-per-gpu" not in call and "--gpus=" not in call, call
    from abacus_repro.pretrain.launch import plan_from_resources

    plan = plan_from_resources(from_rule)
    assert (plan.nodes, plan.procs_per_node) == (nodes, gpus)
