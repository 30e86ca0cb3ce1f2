"""The runs an ``experiments:`` section asks for: each variant's overrides applied to the run's config, once per
training seed, each result checked like the main config before any job starts.

A variant is a mapping of dotted config keys to values (``{"train.schedule.kind": "wsd"}``). With
``experiments.seeds`` each variant runs once per seed, which sets ``train.seed`` (model initialisation and the
order of training rows); the data, the tokenizer and the validation split stay the main run's, so every run is
scored on the same rows with the same tokens. A run's outputs go under ``results/experiments/<run>/``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Keys no variant may set. Every run shares the tokenizer, the validation split and its tokens (so losses compare),
# the data seed and sharding, the exported files and the served LLM; where and how jobs run is not the recipe.
SHARED_KEYS = (
    "seed",
    "shared_data",
    "shards",
    "tokenizer",
    "model.pretrained",
    "mixture.validation",
    "llm_server",
    "eval.models",
    "export",
    "experiments",
    "resources",
    "train.launch",
)


@dataclass(frozen=True)
class ExperimentRun:
    """One run of one variant: its name (``<variant>`` or ``<variant>/seed-<seed>``) and its whole config."""

    name: str
    variant: str
    seed: int | None
    overrides: Mapping[str, Any]
    config: Mapping[str, Any]

    @property
    def prefix(self) -> str:
        """The part of its paths after ``results/`` (and ``logs/``, ``benchmarks/rules/``) before the main run's."""
        return f"experiments/{self.name}/"


def run_name(variant: str, seed: int | None) -> str:
    return variant if seed is None else f"{variant}/seed-{seed}"


def experiment_runs(
    config: Mapping[str, Any], check: Callable[[Mapping[str, Any]], list[str]]
) -> dict[str, ExperimentRun]:
    """{run name: run} of every variant and seed, in config order.

    ``check`` gives the problems of a whole config (the schema and the constraints across keys), so a variant that
    breaks the config is refused with its name before any job runs. Raises ValueError listing every problem.
    """
    section = config["experiments"]
    seeds = list(section["seeds"]) or [None]
    runs: dict[str, ExperimentRun] = {}
    problems: list[str] = []
    for variant, overrides in section["variants"].items():
        where = f"experiments.variants.{variant}"
        overrides = {} if overrides is None else dict(overrides)  # a variant of no overrides: the config as it is
        problems += [f"{where}: {problem}" for problem in override_problems(config, overrides)]
        if problems:
            continue
        for seed in seeds:
            with_seed = overrides if seed is None else {**overrides, "train.seed": seed}
            run_config = apply_overrides(config, with_seed)
            run_config["experiments"] = {"seeds": [], "variants": {}}
            problems += [f"{where} (seed {seed}): {problem}" for problem in check(run_config)]
            name = run_name(variant, seed)
            runs[name] = ExperimentRun(name, variant, seed, overrides, run_config)
    if problems:
        raise ValueError("invalid experiments:\n  " + "\n  ".join(problems))
    return runs


def override_problems(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """Why each override cannot be applied: a key the config does not have, or one every run shares."""
    problems = []
    for key in overrides:
        shared = next((k for k in SHARED_KEYS if key == k or key.startswith(k + ".")), None)
        if key == "train.seed":
            problems.append("train.seed is set by experiments.seeds, not by a variant")
        elif shared:
            problems.append(f"{key} cannot differ between runs: every run shares what {shared} decides")
        elif not has_key(config, key):
            problems.append(f"{key} is not a config key (dotted keys of the config, e.g. train.schedule.kind)")
    return problems


def has_key(config: Mapping[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``config`` with each dotted key set to its value (a mapping value replaces the whole section)."""
    result = copy.deepcopy(dict(config))
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = result
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(value)
    return result


def training_seed(config: Mapping[str, Any]) -> int:
    """The seed of model initialisation and of the order of training rows: train.seed, else the run's seed."""
    seed = config["train"].get("seed")
    return config["seed"] if seed is None else seed
