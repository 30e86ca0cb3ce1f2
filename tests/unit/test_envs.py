"""The per-rule conda environments (workflow/envs/*.yaml): valid, free of the `defaults` channel, named by every rule, pinned
at the project's own pins, closed under dependencies, and covering what their rules' code imports."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ..conftest import REPO_ROOT

ENVS = REPO_ROOT / "workflow" / "envs"


def _load_updater():
    spec = importlib.util.spec_from_file_location("update_envs", ENVS / "update_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


updater = _load_updater()
ENV_FILES = sorted(ENVS.glob("*.yaml"))


def _env(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _split(env) -> tuple[list[str], list[str]]:
    """(conda specs, pip requirement lines) of an environment."""
    conda, pip = [], []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            assert set(item) == {"pip"}, f"unexpected dependency mapping {item}"
            pip.extend(item["pip"])
        else:
            conda.append(item)
    return conda, pip


def _pip_pins(env) -> dict[str, tuple[str, set[str]]]:
    pins = {}
    for line in _split(env)[1]:
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = (specs[0].version, set(requirement.extras))
    return pins


def test_there_is_an_env_per_rule_group():
    assert {path.stem for path in ENV_FILES} >= {"data", "train", "eval", "export"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_parses_and_names_no_defaults_channel(path):
    env = _env(path)
    assert isinstance(env, dict) and env.get("dependencies"), f"{path.name}: no dependencies"
    channels = env.get("channels") or []
    assert "defaults" not in channels, f"{path.name} names the `defaults` channel (Anaconda's terms of service)"
    # Without nodefaults, conda adds the defaults channel from the user's .condarc.
    assert "nodefaults" in channels and "conda-forge" in channels, channels
    assert not any(str(c).startswith(("http://", "https://")) and "anaconda.com" in str(c) for c in channels)


def test_every_rule_names_an_env_file_that_exists():
    blocks = updater.rule_blocks()
    assert len(blocks) >= 20, f"only {len(blocks)} rules found in workflow/rules"
    named = set()
    for rule, (path, block) in blocks.items():
        conda = updater.directive(block, "conda")
        assert conda, f"rule {rule} in {path.name} names no conda environment"
        env_file = (path.parent / conda).resolve()
        assert env_file.is_file(), f"rule {rule} names {conda}, which does not exist"
        assert env_file.parent == ENVS.resolve(), f"rule {rule}: {conda} is not in workflow/envs/"
        named.add(env_file.name)
    unused = {path.name for path in ENV_FILES} - named
    assert not unused, f"environments no rule names: {sorted(unused)}"


def test_the_rule_scan_sees_every_rule_snakemake_sees():
    # `rule x:` blocks in workflow/rules are all rules but the Snakefile's target rule `all`.
    snakefile = (REPO_ROOT / "workflow" / "Snakefile").read_text(encoding="utf-8")
    in_snakefile = set(re.findall(r"^rule\s+(\w+)\s*:", snakefile, re.MULTILINE))
    assert in_snakefile <= {"all"}, f"rules defined in the Snakefile itself: {in_snakefile - {'all'}}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_pins_equal_the_project_pins(path):
    lock = updater.read_lock()
    conda, _pip = _split(_env(path))
    for name, (version, _extras) in _pip_pins(_env(path)).items():
        assert name in lock, f"{path.name}: {name} is not pinned in requirements.lock"
        assert version == lock[name][1], f"{path.name}: {name}=={version}, requirements.lock has {lock[name][1]}"
    specs = dict(spec.split("=", 1) for spec in conda)
    assert set(specs) == {"python", "pip"}, f"{path.name}: conda packages beyond python and pip: {conda}"
    requires_python = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", specs["python"]), f"python is not pinned exactly: {specs['python']}"
    assert specs["python"] in SpecifierSet(requires_python), (specs["python"], requires_python)
    makefile_pip = re.search(r"pip==([\w.]+)", (REPO_ROOT / "Makefile").read_text()).group(1)
    assert specs["pip"] == makefile_pip, f"{path.name}: pip={specs['pip']}, the Makefile installs {makefile_pip}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_closed_under_dependencies(path):
    # Everything a pinned distribution requires on this platform is pinned in the environment too (or pinned
    # exactly by the distribution itself), so conda resolves nothing anew. Checked against installed metadata.
    lock = updater.read_lock()
    pins = _pip_pins(_env(path))
    missing = []
    for name, (_version, extras) in sorted(pins.items()):
        try:
            requirements = updater.requirements_of(name, extras)
        except updater.metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed here; run with the project's .venv")
        for requirement in requirements:
            dependency = canonicalize_name(requirement.name)
            if dependency in pins or updater.needs_no_pin(requirement):
                continue
            where = "" if dependency in lock else ", and requirements.lock does not pin it"
            missing.append(f"{dependency} (needed by {name}{where})")
    assert not missing, f"{path.name} lacks: {missing}"


@pytest.mark.parametrize("env_name", sorted(updater.rules_by_env()))
def test_env_covers_what_its_rules_import(env_name):
    rules = updater.rules_by_env()[env_name]
    modules = updater.third_party_modules(script for script in rules.values() if script is not None)
    assert modules, f"no third-party imports found for {env_name}: the scan is broken"
    pins = _pip_pins(_env(ENVS / f"{env_name}.yaml"))
    providers = updater.distributions_of(modules)
    missing = sorted(f"{dist} (for {', '.join(sorted(mods))})" for dist, mods in providers.items() if dist not in pins)
    assert not missing, f"workflow/envs/{env_name}.yaml lacks what rules {sorted(rules)} import: {missing}"


def test_import_scan_follows_relative_imports_into_subpackages():
    # workflow/scripts/train.py imports abacus_repro.pretrain; the trainer reaches accelerate and torch from there.
    modules = updater.third_party_modules([REPO_ROOT / "workflow" / "scripts" / "train.py"])
    assert {"torch", "accelerate"} <= modules, modules
    assert "abacus_repro" not in modules and "os" not in modules


def test_env_files_are_what_update_envs_writes():
    stale = [
        path.name
        for path, text in updater.expected_files().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date: {stale}; run `.venv/bin/python workflow/envs/update_envs.py`"
