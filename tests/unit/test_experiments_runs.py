"""The runs an `experiments:` section asks for: overrides applied, one run per seed, bad variants refused by name."""

from __future__ import annotations

import pytest

from abacus_repro.config import DEFAULT_CONFIGFILE, config_problems, load_config, merge_config, read_config_file
from abacus_repro.errors import InputError
from abacus_repro.experiments.runs import apply_overrides, experiment_runs, training_seed

from ..conftest import REPO_ROOT


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config(DEFAULT_CONFIGFILE)


def _with(config: dict, variants: dict, seeds: list[int] | None = None) -> dict:
    return {**config, "experiments": {"variants": variants, "seeds": seeds or []}}


def test_each_variant_runs_once_per_seed_with_its_overrides_and_the_seed_as_train_seed(config):
    runs = experiment_runs(
        _with(config, {"recipe": {}, "wsd": {"train.schedule.kind": "wsd"}}, [1, 2]), config_problems
    )
    assert list(runs) == ["recipe/seed-1", "recipe/seed-2", "wsd/seed-1", "wsd/seed-2"]
    wsd = runs["wsd/seed-2"]
    assert (wsd.variant, wsd.seed, wsd.prefix) == ("wsd", 2, "experiments/wsd/seed-2/")
    assert wsd.config["train"]["schedule"]["kind"] == "wsd" and wsd.config["train"]["seed"] == 2
    assert training_seed(wsd.config) == 2 and training_seed(config) == config["seed"]
    # Everything else is the main run's, the data seed included; a run holds no experiments of its own.
    assert wsd.config["seed"] == config["seed"] and wsd.config["mixture"] == config["mixture"]
    assert wsd.config["experiments"] == {"seeds": [], "variants": {}}
    assert runs["recipe/seed-1"].config["train"]["schedule"] == config["train"]["schedule"]


def test_without_seeds_a_variant_runs_once_under_its_own_name(config):
    runs = experiment_runs(_with(config, {"noquality": {"text.classifier.enabled": False}}), config_problems)
    assert list(runs) == ["noquality"]
    assert runs["noquality"].prefix == "experiments/noquality/" and runs["noquality"].seed is None
    assert runs["noquality"].config["text"]["classifier"]["enabled"] is False
    assert config["text"]["classifier"]["enabled"] is True  # the main config is not touched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.schedule.knd": "wsd"}, "train.schedule.knd is not a config key"),
        ({"seed": 3}, "seed cannot differ between runs"),
        ({"tokenizer.vocab_size": 512}, "every run shares what tokenizer decides"),
        ({"mixture.validation.fraction": 0.5}, "mixture.validation"),
        ({"train.launch.nodes": 2}, "train.launch"),
        ({"train.seed": 5}, "train.seed is set by experiments.seeds"),
        ({"train.schedule.kind": "linear"}, "train.schedule.kind: 'linear' is not one of"),
        ({"train.schedule.lr_final": 1.0}, "lr_final <= lr_min <= lr_peak"),
    ],
)
def test_a_variant_that_cannot_run_is_refused_by_name(config, overrides, message):
    with pytest.raises(ValueError, match="experiments.variants.bad") as err:
        experiment_runs(_with(config, {"good": {}, "bad": overrides}), config_problems)
    assert message in str(err.value)


def test_a_mapping_value_replaces_its_section_and_the_input_is_left_alone():
    config = {"train": {"schedule": {"kind": "wcl", "lr_peak": 1.0}}}
    changed = apply_overrides(config, {"train.schedule": {"kind": "wsd"}})
    assert changed == {"train": {"schedule": {"kind": "wsd"}}}
    assert config == {"train": {"schedule": {"kind": "wcl", "lr_peak": 1.0}}}


def test_the_shipped_experiments_config_is_an_overlay_of_the_default():
    overlay = REPO_ROOT / "config" / "experiments.yaml"
    assert set(read_config_file(overlay)) == {"experiments"}
    resolved = load_config(DEFAULT_CONFIGFILE, overlay)
    runs = experiment_runs(resolved, config_problems)
    assert {run.variant for run in runs.values()} == {"recipe", "wsd", "plain"}
    assert len(runs) == 9
    assert merge_config({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_load_config_names_the_files_of_a_refused_variant(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("experiments:\n  variants:\n    typo: {train.schedul.kind: wsd}\n")
    with pytest.raises(InputError, match="bad.yaml.*\n?.*train.schedul.kind is not a config key"):
        load_config(DEFAULT_CONFIGFILE, overlay)
