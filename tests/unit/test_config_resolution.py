"""A config resolves to itself: `--configfile X` runs X plus the schema's defaults, never another file's values.

The workflow's own resolution is read through Snakemake's API (the Snakefile as users run it) and compared key by
key with the file plus the schema's defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from ..conftest import REPO_ROOT

SNAKEFILE = REPO_ROOT / "workflow" / "Snakefile"
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
TINY = REPO_ROOT / "config" / "config.yaml"
PAPER = REPO_ROOT / "config" / "abacus-2.7b.yaml"


def workflow_config(configfiles: list[Path]) -> dict:
    """The config the Snakefile ends up with, parsed exactly as `snakemake [--configfile ...]` parses it."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=configfiles),
            snakefile=SNAKEFILE,
            workdir=REPO_ROOT,
        )
        return copy.deepcopy(dict(workflow_api._workflow.config))


def file_plus_schema_defaults(path: Path) -> dict:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    validate(config, str(SCHEMA), set_default=True)
    return config


def flatten(tree, prefix="") -> dict[str, object]:
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def assert_same_keys_and_values(got: dict, wanted: dict) -> None:
    got, wanted = flatten(got), flatten(wanted)
    assert sorted(set(got) ^ set(wanted)) == [], "keys present on one side only"
    differing = {key: (got[key], wanted[key]) for key in wanted if got[key] != wanted[key]}
    assert differing == {}, "keys whose resolved value is not the file's or the schema's default"


@pytest.fixture(scope="module")
def paper():
    return workflow_config([PAPER])


def test_the_paper_config_resolves_to_itself_plus_schema_defaults(paper):
    assert_same_keys_and_values(paper, file_plus_schema_defaults(PAPER))


def test_no_tiny_value_leaks_into_the_paper_run(paper):
    # Keys the paper file leaves out take the schema's default, not config/config.yaml's tiny value.
    tiny = flatten(file_plus_schema_defaults(TINY))
    stated = flatten(yaml.safe_load(PAPER.read_text(encoding="utf-8")))
    resolved = flatten(paper)
    for key in ("sft.semdedup.clusters", "sft.semdedup.max_tokens", "code.include_repos"):
        assert key not in stated and resolved[key] != tiny[key], key
    leaked = {
        key
        for key, value in tiny.items()
        if key not in stated
        and resolved.get(key) == value
        and flatten(file_plus_schema_defaults(PAPER)).get(key) != value
    }
    assert leaked == set()


def test_without_a_configfile_the_run_is_the_tiny_default():
    assert_same_keys_and_values(workflow_config([]), file_plus_schema_defaults(TINY))
