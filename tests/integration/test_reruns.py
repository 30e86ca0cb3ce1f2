"""Partial re-runs and the reproducibility audit, on one real run of the micro workflow.

The workflow runs once in a temporary directory from a copy of the checkout (workflow/, src/), so the
tests can edit and touch code without touching the repository. Then, with dry runs only:
- changing one rule's parameter re-runs exactly that rule's jobs and their descendants in Snakemake's DAG;
- editing a rule's script (or a package module it imports) re-runs its rule; restoring the content does not;
- touching files without changing them re-runs nothing with the recommended triggers
  (``--rerun-triggers mtime params input software-env``, large ``--max-checksum-file-size``), while Snakemake's
  default triggers re-run every job (the script mtimes);
and the audit: a clean run passes, a tampered output fails by name, and ``--rerun`` reproduces every
deterministic data output byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from abacus_repro.provenance.rules import DATA, RULES

from ..conftest import REPO_ROOT, micro_config, write_micro_config

pytestmark = pytest.mark.integration

# The recommended setting (profiles/default): content, not modification times, decides what re-runs.
TRIGGERS = ["--rerun-triggers", "mtime", "params", "input", "software-env", "--max-checksum-file-size", "268435456"]
DATA_SAMPLES = ["data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml", "data/samples/docs"]


def _env(checkout: Path) -> dict[str, str]:
    """The copy's package comes first on the path, so what runs is the code that was fingerprinted."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(checkout / "src"),
    )


def _snakemake(checkout: Path, run: Path, *extra: str, config: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(checkout / "workflow/Snakefile"),
        "--directory",
        str(run),
        "--configfile",
        str(config or run / "micro.yaml"),
        "--cores",
        "2",
        "--workflow-profile",
        "none",
        *extra,
    ]
    return subprocess.run(cmd, cwd=run, capture_output=True, text=True, env=_env(checkout), timeout=1800, check=False)


def _audit(checkout: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "abacus_repro.cli", "audit", "--directory", str(run), *extra],
        capture_output=True,
        text=True,
        env=_env(checkout),
        timeout=1200,
        check=False,
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ["workflow", "src"]:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=ignore)
    return root


@pytest.fixture(scope="module")
def run(checkout, tmp_path_factory) -> Path:
    """The micro workflow, run once; raw inputs copied in and named by relative paths."""
    run = tmp_path_factory.mktemp("run")
    for rel in DATA_SAMPLES:
        source, target = REPO_ROOT / rel, run / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    write_micro_config(run, micro_config(absolute_inputs=False))
    result = _snakemake(checkout, run, *TRIGGERS)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((run / "logs").rglob("*.log")))
        pytest.fail(f"workflow failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return run


# --- the DAG and the dry-run job list -----------------------------------------------------------------------


def dag(checkout: Path, run: Path, config: Path | None = None) -> tuple[dict[int, str], dict[int, set[int]]]:
    """Snakemake's job DAG: job id -> rule, and job id -> the jobs that consume its outputs."""
    result = _snakemake(checkout, run, "--dag", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    rules = {int(i): rule for i, rule in re.findall(r"^\s*(\d+)\[label = \"(\w+)", result.stdout, re.MULTILINE)}
    children: dict[int, set[int]] = {i: set() for i in rules}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, re.MULTILINE):
        children[int(src)].add(int(dst))
    assert len(rules) > 30, result.stdout[-2000:]
    return rules, children


def descendants(start: set[int], children: dict[int, set[int]]) -> set[int]:
    found, queue = set(start), list(start)
    while queue:
        for child in children[queue.pop()]:
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def planned_jobs(checkout: Path, run: Path, *extra: str, config: Path | None = None) -> dict[int, dict[str, str]]:
    """The dry run's jobs: id -> {rule, reason}; empty when there is nothing to be done."""
    result = _snakemake(checkout, run, "--dry-run", *extra, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        jobid = re.search(r"^\s+jobid: (\d+)$", block, re.MULTILINE)
        if head and jobid:
            reason = re.search(r"^\s+reason: (.*)$", block, re.MULTILINE)
            jobs[int(jobid.group(1))] = {"rule": head.group(1), "reason": reason.group(1) if reason else ""}
    if not jobs:
        assert "Nothing to be done" in text, text[-3000:]
    return jobs


def _same_ids(planned: dict[int, dict[str, str]], rules: dict[int, str]) -> None:
    """Job ids of the dry run and of the DAG name the same jobs (both from one deterministic DAG build)."""
    for jobid, job in planned.items():
        assert rules.get(jobid) == job["rule"], (jobid, job, rules.get(jobid))


@pytest.fixture(scope="module")
def base_dag(checkout, run):
    return dag(checkout, run)


def test_run_is_complete(checkout, run):
    assert planned_jobs(checkout, run, *TRIGGERS) == {}


@pytest.mark.parametrize(
    ("key", "value", "changed_rules"),
    [
        # Late in the DAG: only training, evaluation and export follow (both tokenize rules cut rows of seq_len).
        ("pack.seq_len", 96, {"tokenize", "tokenize_validation"}),
        # Both classifier rules read this key, but apply depends on train: only train's params are "changed", apply
        # re-runs as its descendant.
        ("text.classifier.threshold", 0.6, {"text_classifier_train"}),
    ],
)
def test_changed_param_reruns_exactly_its_rule_and_descendants(checkout, run, tmp_path, key, value, changed_rules):
    config = yaml.safe_load((run / "micro.yaml").read_text())
    *sections, name = key.split(".")
    node = config
    for section in sections:
        node = node[section]
    assert node.get(name) != value
    node[name] = value
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    rules, children = dag(checkout, run, config=path)
    planned = planned_jobs(checkout, run, *TRIGGERS, config=path)
    _same_ids(planned, rules)
    direct = {i for i, job in planned.items() if job["reason"].startswith("Params have changed")}
    # The provenance rule records the whole configuration, so it sees every change (it is downstream anyway).
    assert {planned[i]["rule"] for i in direct} - {"provenance"} == changed_rules
    assert {i for i in direct if planned[i]["rule"] != "provenance"} == {
        i for i, r in rules.items() if r in changed_rules
    }
    assert set(planned) == descendants(direct, children)
    assert len(planned) < len(rules)  # not the world: what comes before the change stays
    assert not {"ingest_code", "code_clean", "ingest_stackexchange", "text_judge"} & {
        j["rule"] for j in planned.values()
    }


def test_edited_script_reruns_its_rule_and_restoring_it_does_not(checkout, run, base_dag):
    rules, children = base_dag
    script = checkout / "workflow/scripts/docs_filter.py"
    original, stat = script.read_bytes(), script.stat()
    try:
        script.write_bytes(original + b"# edited: a different script is different code\n")
        planned = planned_jobs(checkout, run, *TRIGGERS)
        _same_ids(planned, rules)
        direct = {i for i, r in rules.items() if r == "docs_filter"}
        assert set(planned) == descendants(direct, children)
        assert "code-sha256:" in planned[direct.pop()]["reason"]  # seen through the code fingerprint parameter
        script.write_bytes(original)  # same content again, newer mtime
        assert planned_jobs(checkout, run, *TRIGGERS) == {}
        # Snakemake's default triggers compare the script's mtime with the outputs': it would re-run.
        assert "docs_filter" in {job["rule"] for job in planned_jobs(checkout, run).values()}
    finally:
        script.write_bytes(original)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_edited_package_module_reruns_the_rules_that_import_it(checkout, run, base_dag):
    rules, children = base_dag
    manifest = json.loads((run / "results/provenance/manifest.json").read_text())
    module = "src/abacus_repro/text/docs_filter.py"
    importing = {rule for rule, info in manifest["rules"].items() if module in (info["code"] or {})["files"]}
    assert importing == {"docs_filter"}
    path = checkout / module
    original, stat = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + b"\n# edited\n")
        planned = planned_jobs(checkout, run, *TRIGGERS)
        _same_ids(planned, rules)
        assert set(planned) == descendants({i for i, r in rules.items() if r in importing}, children)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_touching_files_does_not_rerun_the_world(checkout, run, base_dag):
    rules, _ = base_dag
    later = max(p.stat().st_mtime for p in (run / "results").rglob("*") if p.is_file()) + 60
    touched = [
        *checkout.rglob("*.py"),
        *(checkout / "workflow").rglob("*.smk"),
        *(run / "data").rglob("*"),
        run / "results/ingest/stackexchange/qa.parquet",
        run / "results/code/shards/0/kept.parquet",
        run / "results/model/tokenizer/tokenizer.json",
    ]
    saved = {p: p.stat() for p in touched if p.is_file()}
    try:
        for path in saved:
            os.utime(path, (later, later))
        assert planned_jobs(checkout, run, *TRIGGERS) == {}
        # With Snakemake's default triggers every script is newer than its outputs: the whole DAG re-runs.
        assert set(planned_jobs(checkout, run)) == set(rules)
    finally:
        for path, stat in saved.items():
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --- the audit ----------------------------------------------------------------------------------------------


def test_manifest_covers_every_output(run, base_dag):
    manifest = json.loads((run / "results/provenance/manifest.json").read_text())
    by_path = {o["path"]: o for o in manifest["outputs"]}
    for path in ["results/code/stats.json", "results/train/sft/model", "results/export/verify.json"]:
        entry = by_path[path]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and entry["rule"] and entry["start"] and entry["end"]
        assert entry["code_fingerprint"] == manifest["rules"][entry["rule"]]["code"]["digest"]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in entry["inputs"].values()), entry["inputs"]
    declared = {o["rule"] for o in manifest["outputs"] if o["declared"]}
    in_dag = set(base_dag[0].values()) - {"all", "provenance"}
    assert declared == in_dag, declared ^ in_dag  # every job's outputs, and nothing else, recorded by rule
    assert manifest["seeds"]["seed"] == 7 and manifest["environment"]["packages"]["torch"]
    assert (run / "results/provenance/report.html").read_text().count("<tr>") > len(manifest["outputs"])


def test_audit_passes_then_names_a_tampered_output(checkout, run):
    clean = _audit(checkout, run)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    target = run / "results/text/stats.json"
    original, stat = target.read_bytes(), target.stat()
    try:
        target.write_bytes(original.replace(b"{", b"{ ", 1))
        tampered = _audit(checkout, run)
        assert tampered.returncode == 1, tampered.stdout
        assert re.search(r"FAIL modified\s+results/text/stats.json\s+\[text_stats\]", tampered.stdout), tampered.stdout
        assert "changed outside the workflow" in tampered.stdout
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_audit_rerun_reproduces_every_deterministic_data_output(checkout, run, base_dag, tmp_path):
    report = tmp_path / "audit.json"
    result = _audit(checkout, run, "--rerun", "--json", str(report))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    findings = json.loads(report.read_text())["rerun"]["findings"]
    statuses = {f["status"] for f in findings}
    assert statuses == {"reproduced"}, [f for f in findings if f["status"] != "reproduced"]
    in_dag = set(base_dag[0].values())
    assert {f["rule"] for f in findings} == {name for name, kind in RULES.items() if kind.stage == DATA} & in_dag
    assert len(findings) >= 40
