"""A run's configuration as the workflow resolves it: the given YAML file plus the schema's defaults.

`snakemake --configfile X` reads X alone (config/config.yaml only when no file is given) and fills every key X
leaves out from workflow/schemas/config.schema.yaml, which is the one place defaults live. Commands that reason
about a config outside Snakemake (``abacus-repro plan``) resolve it here, through the same validator, so they see
exactly what the workflow's jobs see.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIGFILE = REPO_ROOT / "config" / "config.yaml"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` as written (no defaults); InputError when it is missing or not a mapping."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(path, f"cannot read the configuration file ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML ({err})") from err
    if not isinstance(loaded, dict):
        raise InputError(path, f"a configuration is a YAML mapping of keys, found {type(loaded).__name__}")
    return loaded


def resolve_config(
    config: Mapping[str, Any], schema: str | Path = SCHEMA_PATH, source: str | Path | None = None
) -> dict[str, Any]:
    """A validated deep copy of ``config`` with every default the schema gives filled in.

    Uses Snakemake's own validator (``set_default=True``) so the result equals the workflow's ``config`` object.
    ``source`` names the file in the error of an invalid config.
    """
    # Imported here: the package's stage code runs in per-rule environments without Snakemake.
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    resolved = copy.deepcopy(dict(config))
    try:
        validate(resolved, str(Path(schema).resolve()), set_default=True)
    except WorkflowError as err:
        raise InputError(source, "invalid configuration:\n  " + "\n  ".join(schema_problems(config, schema))) from err
    return resolved


def schema_problems(config: Mapping[str, Any], schema: str | Path = SCHEMA_PATH) -> list[str]:
    """One line per way ``config`` breaks the schema, each naming the dotted key (Snakemake's own error prints
    the whole schema of the section instead)."""
    return _schema_errors(config, schema) or ["the schema refuses it (no detail)"]


def _schema_errors(config: Mapping[str, Any], schema: str | Path) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(yaml.safe_load(Path(schema).read_text(encoding="utf-8")))
    lines = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(part) for part in error.absolute_path)
        lines.append(f"{where}: {error.message}" if where else error.message)
    return lines


def config_problems(config: Mapping[str, Any], schema: str | Path = SCHEMA_PATH) -> list[str]:
    """Every way a resolved config cannot run, one line each: the schema's, else the constraints across keys; []."""
    from .settings import check_config

    problems = _schema_errors(config, schema)
    if problems:
        return problems
    try:
        check_config(config)
    except ValueError as err:
        return [line.strip() for line in str(err).splitlines()[1:]]
    return []


def load_config(
    path: str | Path | None = None, *overlays: str | Path, schema: str | Path = SCHEMA_PATH
) -> dict[str, Any]:
    """The config `snakemake --configfile path [overlay ...]` runs with (the built-in config/config.yaml when
    ``path`` is None): each overlay merged over it key by key, as Snakemake merges several config files. Its
    ``experiments:`` variants are checked too (abacus_repro.experiments.runs)."""
    from .experiments.runs import experiment_runs
    from .settings import check_config

    path = Path(path) if path is not None else DEFAULT_CONFIGFILE
    merged = read_config_file(path)
    for overlay in overlays:
        merged = merge_config(merged, read_config_file(overlay))
    source = ", ".join(map(str, (path, *overlays)))
    resolved = resolve_config(merged, schema, source=source)
    try:
        check_config(resolved)
        experiment_runs(resolved, config_problems)
    except ValueError as err:
        raise InputError(source, str(err)) from None
    return resolved


def merge_config(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: mappings merged key by key, anything else replaced (Snakemake's update_config)."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _section_schema(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The subschema of the dotted section ``name`` (e.g. ``train``, ``text.judge``), with the schema's ``$defs``."""
    node: Mapping[str, Any] = schema
    for part in name.split("."):
        properties = node.get("properties") or {}
        if part not in properties:
            raise KeyError(f"the schema has no section {name!r} (no {part!r})")
        node = properties[part]
    if node.get("type") != "object":
        raise KeyError(f"{name!r} is a key, not a section of the config")
    return {"$schema": schema["$schema"], "$defs": schema.get("$defs", {}), **node}


def resolved_section(
    name: str, overrides: Mapping[str, Any] | None = None, schema: str | Path = SCHEMA_PATH
) -> dict[str, Any]:
    """The config section ``name`` as a run resolves it: ``overrides`` plus every default the schema gives.

    For code called outside the workflow (tests, benchmarks, by hand) with part of a section: the result is what
    the section's rule would receive for a config that sets just ``overrides``, through the same validator, so
    stage code reads every key directly and the schema stays the one place defaults live.
    """
    import tempfile

    full = yaml.safe_load(Path(schema).read_text(encoding="utf-8"))
    section_schema = _section_schema(full, name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.schema.yaml"
        path.write_text(yaml.safe_dump(section_schema, sort_keys=False), encoding="utf-8")
        return resolve_config(dict(overrides or {}), path, source=f"{name} settings")


def section_defaults(name: str) -> dict[str, Any]:
    """The config section ``name`` with nothing set: the schema's defaults alone."""
    return resolved_section(name)
