"""One source of defaults: no stage code or rule script gives a config key a default of its own.

The schema (workflow/schemas/config.schema.yaml) is the only place a config key's default lives; stage code reads
the resolved section directly (``settings["grad_clip"]``), and code called outside the workflow gets its settings
through ``abacus_repro.config.resolved_section``. This test scans src/ and workflow/scripts/ for the two spellings of a
second default, ``x.get("key", default)`` and ``x.get("key") or default``, where ``key`` is a schema property with a
default, and fails naming each one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from abacus_repro.config import SCHEMA_PATH

from ..conftest import REPO_ROOT

SCANNED = ("src", "workflow/scripts")

# Receivers that hold data, not configuration, whose key merely shares a name with a config key. Each `.get` on
# them with a default is legitimate (an optional field of a record).
DATA_RECEIVERS = {
    "meta": "a document's JSON meta (path, source, ...)",
    "item.meta": "a document's JSON meta",
    "i.meta": "a document's JSON meta",
    "data": "a tokenizer.json read by the GGUF writer",
    "doc": "a Parquet document record (source, meta)",
    "item.doc": "a Parquet document record",
    "result": "a benchmark result JSON",
    "eval_results": "evalplus's *_eval_results.json",
    "paths": "the eval summary's {benchmark: result files}",
    "stats": "a stage's stats JSON",
    "listed": "an OpenAI /v1/models reply",
    "manifest": "a provenance manifest",
    "env": "a provenance manifest's environment block (installed packages)",
    "info": "a rule's entry in a provenance manifest",
    "o": "an output's entry in a provenance manifest",
    "record": "Snakemake's job record",
    "self.rules[rule]": "a rule's entry in a provenance manifest",
    "job['resources']": "a job's resources in the dry-run plan",
    "resources": "a Snakemake job's resources",
    "config['bf16']": "a DeepSpeed JSON",
    "fp16": "a DeepSpeed JSON's fp16 block",
    "group": "an optimizer param group",
    "shares": "sft_shares after validation (a missing kind has no share)",
    "resolved": "an already resolved config (dry run)",
}
# Files the scan leaves to the helper restructuring them (issue 15): remove an entry when its file is done.
PENDING: dict[str, str] = {}


def _defaulted_keys() -> set[str]:
    """Every property name that has a schema default, at any depth."""
    keys: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict) and "default" in sub:
                    keys.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(Path(SCHEMA_PATH).read_text(encoding="utf-8")))
    return keys


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _config_get(node: ast.AST, keys: set[str]) -> ast.Call | None:
    """``node`` when it is ``<receiver>.get("<defaulted key>", ...)`` on a receiver that is not data."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"):
        return None
    if not node.args or not isinstance(node.args[0], ast.Constant) or node.args[0].value not in keys:
        return None
    if ast.unparse(node.func.value) in DATA_RECEIVERS:
        return None
    return node


def second_defaults(path: Path, keys: set[str], root: Path = REPO_ROOT) -> list[str]:
    """``file:line: code`` for each config read with a default of its own in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        call = _config_get(node, keys)
        if call is not None and len(call.args) > 1 and not _is_none(call.args[1]):
            found.append(node)
        is_or = isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)
        or_call = _config_get(node.values[0], keys) if is_or else None
        # `x.get("key") or None` adds no default; `x.get("key") or 32` does.
        if or_call is not None and len(or_call.args) == 1 and not all(_is_none(v) for v in node.values[1:]):
            found.append(node)
    return [f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}" for node in found]


def test_scanner_finds_both_spellings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'clip = train.get("grad_clip", 0.0)\n'
        'size = settings.get("batch_size") or 32\n'
        'path = meta.get("path", "")\n'  # data, not config
        'model = settings.get("model")\n'  # no default of its own
        'body = settings.get("extra_body") or None\n'
    )
    found = [line.split(": ", 1)[1] for line in second_defaults(sample, _defaulted_keys(), root=tmp_path)]
    assert found == ["train.get('grad_clip', 0.0)", "settings.get('batch_size') or 32"]


def test_no_stage_code_or_script_gives_a_config_key_a_second_default():
    keys = _defaulted_keys()
    assert {"grad_clip", "batch_size", "sample_size", "checkpoint_every"} <= keys
    found = []
    for folder in SCANNED:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if str(path.relative_to(REPO_ROOT)) not in PENDING:
                found += second_defaults(path, keys)
    assert not found, (
        "config keys with a default in code as well as in the schema (read the resolved key directly):\n"
        + "\n".join(found)
    )


def _section(config: dict, name: str) -> dict:
    for part in name.split("."):
        config = config.get(part) or {}
    return config


def test_a_section_resolves_as_the_whole_config_does():
    """resolved_section gives code called by hand exactly the settings the workflow's rule receives."""
    from abacus_repro.config import DEFAULT_CONFIGFILE, load_config, read_config_file, resolved_section

    written, resolved = read_config_file(DEFAULT_CONFIGFILE), load_config()
    for name in ("train", "train.launch", "sft", "mixture", "code", "text.judge", "text.classifier", "export", "eval"):
        assert resolved_section(name, _section(written, name)) == _section(resolved, name), name
