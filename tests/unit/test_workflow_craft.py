"""Snakemake craft: lint clean, every rule logs and names an environment, configs validated by the schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from ..conftest import REPO_ROOT

SCHEMA = REPO_ROOT / "workflow/schemas/config.schema.yaml"
RULE_FILES = sorted((REPO_ROOT / "workflow/rules").glob("*.smk"))


def _rule_blocks():
    for path in RULE_FILES:
        text = path.read_text()
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, flags=re.MULTILINE | re.DOTALL):
            yield path.name, match.group(1), match.group(2)


def test_snakemake_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "format", "--check", "src", "workflow/scripts", "tests", "benchmarks", "workflow/envs"],
        ["snakefmt", "--check", "workflow"],
    ],
    ids=["ruff-format", "snakefmt"],
)
def test_code_and_workflow_are_formatted(command):
    """One format for the Python (ruff format) and for the Snakefile and .smk files (snakefmt), from pyproject."""
    tool = Path(sys.executable).parent / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} is not installed next to this interpreter")
    result = subprocess.run(
        [str(tool), *command[1:]], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_log_conda_and_resources():
    blocks = list(_rule_blocks())
    assert len(blocks) >= 25
    for filename, rule, body in blocks:
        for directive in ("log:", "conda:", "threads:", "resources:", "script:"):
            assert f"    {directive}" in body, f"{filename}: rule {rule} has no {directive}"
        conda = re.search(r"conda:\n\s+\"(.+?)\"", body).group(1)
        assert (REPO_ROOT / "workflow/rules" / conda).resolve().is_file(), (rule, conda)


@pytest.mark.parametrize("name", ["config/config.yaml", "config/abacus-2.7b.yaml", "tests/integration/micro.yaml"])
def test_shipped_configs_are_valid(name):
    validate(yaml.safe_load((REPO_ROOT / name).read_text()), str(SCHEMA))


def test_wrong_key_and_value_are_named():
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["code"]["max_repo"] = 3
    with pytest.raises(Exception, match="max_repo"):
        validate(config, str(SCHEMA))
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["text"]["judge"]["backend"] = "gpt"
    with pytest.raises(Exception, match=r"'gpt' is not one of \['metadata', 'openai', 'transformers'\]"):
        validate(config, str(SCHEMA))


def test_schema_fills_defaults():
    config = {
        "seed": 1,
        "code": {"source": "python_installation"},
        "text": {"stackexchange": {"dumps": ["x"]}},
        "model": {
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "num_key_value_heads": 1,
            "intermediate_size": 8,
            "max_position_embeddings": 64,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-5,
            "scale_emb": 12,
            "scale_depth": 1.4,
            "dim_model_base": 8,
            "init_std": 0.1,
        },
        "mixture": {"shares": {"code": 0.7, "math": 0.1, "text": 0.2}, "tokens": {"base": 1, "cosine": 1, "anneal": 1}},
        "train": {
            "schedule": {"lr_peak": 1e-3, "lr_min": 1e-4, "lr_final": 1e-4, "warmup_steps": 1, "cosine_horizon": 10}
        },
    }
    validate(config, str(SCHEMA))
    assert config["code"]["ruff_batch_size"] == 500
    assert config["text"]["judge"]["backend"] == "metadata"
    assert config["sft"]["lr"] == 1.6e-4 and config["sft"]["epochs"] == 3


def test_scripts_exist_for_every_rule():
    for filename, rule, body in _rule_blocks():
        script = re.search(r"script:\n\s+\"(.+?)\"", body).group(1)
        assert (REPO_ROOT / "workflow/rules" / script).resolve().is_file(), (filename, rule, script)
    assert Path(REPO_ROOT / "workflow/Snakefile").read_text().count("include:") == len(RULE_FILES)


SCRIPT_SHAPE = re.compile(
    r'^"""Rule (?P<rule>\w+): [^\n].*?"""\n\n'
    r"(?P<imports>(?:from abacus_repro\.[\w.]+ import \w+\n){2})\n"
    r"run_rule\(snakemake, (?P<entry>\w+)\)  # noqa: F821  \(injected by Snakemake's script directive\)\n$",
    re.DOTALL,
)


@pytest.mark.parametrize("script", sorted((REPO_ROOT / "workflow/scripts").glob("*.py")), ids=lambda p: p.name)
def test_every_rule_script_is_the_same_few_lines(script):
    """A script only hands the job to its stage entry (settings, paths); everything else is in the package."""
    match = SCRIPT_SHAPE.match(script.read_text())
    assert match, f"{script.name} is not: docstring, the entry's import, run_rule's import, run_rule(snakemake, entry)"
    assert match["rule"] == script.stem
    # The two imports in ruff's order: the stage's entry and run_rule.
    imported = set(re.findall(r"import (\w+)", match["imports"]))
    assert imported == {match["entry"], "run_rule"}, match["imports"]
    assert "from abacus_repro.rules import run_rule\n" in match["imports"]


def test_every_rule_declares_its_code_and_settings_as_params():
    """Editing a rule's code re-runs it through its own `code` parameter; its config arrives as `settings`."""
    for filename, rule, body in _rule_blocks():
        params = re.search(r"\n    params:\n(.*?)(?=\n    \w+:|\Z)", body, flags=re.DOTALL)
        assert params, f"{filename}: rule {rule} has no params"
        assert f'code=get_code_fingerprint("{rule}")' in params.group(1), f"{filename}: rule {rule}"
        assert "settings=" in params.group(1), f"{filename}: rule {rule}"


def test_no_rule_is_changed_after_parsing():
    for path in [*RULE_FILES, REPO_ROOT / "workflow/Snakefile"]:
        text = path.read_text()
        assert "set_params" not in text and ".snakemake/" not in text, path.name
    for path in (REPO_ROOT / "src").rglob("*.py"):
        assert ".snakemake/metadata" not in path.read_text(), path


def test_quality_filter_off_runs_no_judge_and_no_classifier_training(tmp_path):
    """text.classifier.enabled false: the two jobs only the filter needs leave the DAG; every other job stays."""
    from abacus_repro import dryrun

    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text(encoding="utf-8"))
    config["text"].setdefault("classifier", {})["enabled"] = False
    off_config = tmp_path / "quality_filter_off.yaml"
    off_config.write_text(yaml.safe_dump(config), encoding="utf-8")
    recipe = dryrun.parse_job_counts(dryrun.run_dry_run(REPO_ROOT / "config/config.yaml", tmp_path))
    off = dryrun.parse_job_counts(dryrun.run_dry_run(off_config, tmp_path))
    assert recipe["text_judge"] == recipe["text_classifier_train"] == 1
    assert off == {rule: count for rule, count in recipe.items() if rule not in {"text_judge", "text_classifier_train"}}
