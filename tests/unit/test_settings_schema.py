"""The typed settings (abacus_repro.settings) and the workflow's JSON schema agree key by key, type by type and
default by default, so a job that builds its stage's settings from the config Snakemake validated sees exactly the
values a test, a benchmark or a person calling the stage by hand gets.

Types are compared by behaviour: the same probe values must be accepted or refused by the schema's subschema and by
the settings field, which covers types, enums, bounds, patterns and nullability without comparing two spellings.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, get_args, get_origin

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from abacus_repro.config import DEFAULT_CONFIGFILE, REPO_ROOT, SCHEMA_PATH, load_config, read_config_file
from abacus_repro.settings import ResourceOverride, ResourcesSettings, RunSettings, Settings

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
PROBES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 5, 7, 8, 13, 16, 64, 100, 512, 1024, 65535, 65536, 10**7,
    0.5, 1.5, -0.5, 1e-9, 0.999, "", "x", "py313", "py2", "2024-01-01", "abacus-repro", "a b", [], ["x"], [1], [0.5],
    {}, {"a": 1},
]  # fmt: skip


def resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SCHEMA["$defs"][node["$ref"].split("/")[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def with_defaults(node: dict, value: Any) -> Any:
    """``value`` with the schema's nested defaults filled in, as Snakemake's validate(set_default=True) does."""
    node = resolve(node)
    if isinstance(value, dict) and "properties" in node:
        filled = dict(value)
        for key, sub in node["properties"].items():
            if key in filled:
                filled[key] = with_defaults(sub, filled[key])
            elif "default" in resolve(sub):
                filled[key] = with_defaults(sub, copy.deepcopy(resolve(sub)["default"]))
        return filled
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [with_defaults(node["items"], item) for item in value]
    return value


def settings_class(annotation: Any) -> type[Settings] | None:
    """The Settings class of a field typed as one, or as a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is list:
        return settings_class(get_args(annotation)[0])
    return None


def schema_accepts(node: dict, value: Any) -> bool:
    return jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], **node}).is_valid(value)


def field_accepts(adapter: TypeAdapter, value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def probes_for(node: dict, default: Any) -> list[Any]:
    node = resolve(node)
    extra = list(node.get("enum", [])) + ["not-an-enum-value"]
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in node:
            extra += [node[key], node[key] - 1, node[key] + 1]
    if "items" in node and "enum" in resolve(node["items"]):
        extra += [[item] for item in resolve(node["items"])["enum"]] + [["not-an-enum-value"]]
    return PROBES + extra + ([default] if default is not None else [])


def compare(model: type[Settings], node: dict, where: str) -> list[str]:
    """Every disagreement between ``model`` and the object schema ``node``, named by its dotted key."""
    node = resolve(node)
    problems: list[str] = []
    properties = node.get("properties", {})
    if set(properties) != set(model.model_fields):
        problems.append(
            f"{where}: keys differ: only in schema {sorted(set(properties) - set(model.model_fields))}, "
            f"only in settings {sorted(set(model.model_fields) - set(properties))}"
        )
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    if required != set(node.get("required", [])):
        problems.append(
            f"{where}: required keys differ: schema {sorted(node.get('required', []))}, settings {sorted(required)}"
        )
    for name in sorted(set(properties) & set(model.model_fields)):
        problems += compare_field(model, name, properties[name], f"{where}.{name}" if where else name)
    return problems


def field_type(field, **config) -> TypeAdapter:
    annotated = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return TypeAdapter(annotated, config=ConfigDict(**config) if config else None)


def compare_field(model: type[Settings], name: str, node: dict, where: str) -> list[str]:
    field = model.model_fields[name]
    node = resolve(node)
    problems = []
    adapter = field_type(field)
    if not field.is_required():
        ours = adapter.dump_python(field.get_default(call_default_factory=True), mode="json")
        if "default" not in node:
            problems.append(f"{where}: the settings give a default ({ours!r}), the schema none")
        elif ours != with_defaults(node, copy.deepcopy(node["default"])):
            problems.append(f"{where}: defaults differ: schema {node['default']!r}, settings {ours!r}")
    elif "default" in node:
        problems.append(f"{where}: the schema gives a default ({node['default']!r}), the settings none")
    nested = settings_class(field.annotation)
    if nested is not None:
        item_node = resolve(node["items"]) if node.get("type") == "array" else node
        return problems + compare(nested, item_node, where)
    strict = field_type(field, strict=True)
    for value in probes_for(node, node.get("default")):
        if schema_accepts(node, value) != field_accepts(strict, value):
            problems.append(
                f"{where}: {value!r} is {'accepted' if schema_accepts(node, value) else 'refused'} by the schema "
                f"but not by the settings"
            )
    return problems


def test_the_settings_and_the_schema_agree_everywhere():
    problems = compare(RunSettings, SCHEMA, "")
    # Per-rule resource entries: the schema's additionalProperties, the settings' typed extras.
    assert ResourcesSettings.__annotations__["__pydantic_extra__"] == "dict[str, ResourceOverride]"
    # An override's key left unset is None in the settings (resources.default's value applies).
    override = copy.deepcopy(SCHEMA["properties"]["resources"]["additionalProperties"])
    for key, sub in override["properties"].items():
        override["properties"][key] = {"anyOf": [sub, {"type": "null"}], "default": None}
    problems += compare(ResourceOverride, override, "resources.<rule>")
    assert not problems, "\n".join(problems)


def test_the_comparison_finds_a_disagreement():
    """The check is not vacuous: a changed default, a changed bound and a missing key are each found."""
    from abacus_repro.settings import TrainSettings

    schema = copy.deepcopy(SCHEMA["properties"]["train"])
    schema["properties"]["grad_clip"]["default"] = 0.5
    schema["properties"]["checkpoint_every"]["minimum"] = 1
    del schema["properties"]["keep_checkpoints"]
    problems = "\n".join(compare(TrainSettings, schema, "train"))
    assert "train.grad_clip: defaults differ" in problems
    assert "train.checkpoint_every: 0 is refused by the schema" in problems
    assert "only in settings ['keep_checkpoints']" in problems


@pytest.mark.parametrize(
    "configfile",
    sorted({DEFAULT_CONFIGFILE, *(REPO_ROOT / "config").glob("*.yaml"), REPO_ROOT / ".test/config/config.yaml"}),
    ids=lambda p: str(p.relative_to(REPO_ROOT)),
)
def test_every_shipped_config_builds_settings_equal_to_what_snakemake_resolves(configfile):
    # config/experiments.yaml is an overlay, given after the built-in config (README).
    overlay = set(read_config_file(configfile)) == {"experiments"}
    resolved = load_config(DEFAULT_CONFIGFILE, configfile) if overlay else load_config(configfile)
    settings = RunSettings.model_validate(resolved)
    expected = with_defaults(SCHEMA, resolved)
    assert settings.model_dump(mode="json", exclude={"resources"}) == {
        k: v for k, v in expected.items() if k != "resources"
    }
    # A rule's override sets some keys; the others are None in the settings, absent in the config.
    overrides = {
        rule: spec.model_dump(exclude_none=True) for rule, spec in (settings.resources.model_extra or {}).items()
    }
    assert {"default": settings.resources.default.model_dump(), **overrides} == expected["resources"]
