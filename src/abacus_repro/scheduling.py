"""What each rule's jobs ask the scheduler for, from the run's `resources:` configuration.

Sizes are configuration, not profile: the paper run and its CPU rehearsal differ in config values only, and a
user's own site-wide `slurm` profile (account, partition, their defaults) never replaces them. The Snakefile calls
these for every rule (workflow/rules/common.smk); the names returned are the SLURM executor plugin's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Training's nodes and GPUs come from train.launch (workflow/rules/pretrain.smk), so the batch arithmetic in the
# config and the allocation cannot disagree.
LAUNCH_OWNED_RULES = {"train"}


def rule_settings(resources: Mapping[str, Mapping[str, Any]], rule: str) -> dict[str, Any]:
    """`resources.default` overlaid with `resources.<rule>` (the schema fills the default's keys)."""
    return {**resources["default"], **resources.get(rule, {})}


def rule_threads(resources: Mapping[str, Mapping[str, Any]], rule: str) -> int:
    return int(rule_settings(resources, rule)["threads"])


def rule_resources(resources: Mapping[str, Mapping[str, Any]], rule: str) -> dict[str, int]:
    """Memory (MB, per node), wall time (minutes), CPUs per task and, when asked for, GPUs of a rule's jobs."""
    settings = rule_settings(resources, rule)
    asked = {
        "mem_mb": int(settings["mem_mb"]),
        "runtime": int(settings["runtime"]),
        "cpus_per_task": int(settings["cpus"] or settings["threads"]),
    }
    if settings["gpus"]:
        asked["gpu"] = int(settings["gpus"])
    return asked


def check_resource_settings(resources: Mapping[str, Any], rules: Iterable[str]) -> None:
    """Refuse an entry that names no rule, or GPUs where train.launch decides them; the message names the key."""
    names = sorted(set(rules))
    for key in resources:
        if key != "default" and key not in names:
            raise ValueError(f"config resources.{key}: no such rule; allowed: default, {', '.join(names)}")
    for rule in LAUNCH_OWNED_RULES:
        if resources.get(rule, {}).get("gpus"):
            raise ValueError(f"config resources.{rule}.gpus: training GPUs come from train.launch, not resources")
