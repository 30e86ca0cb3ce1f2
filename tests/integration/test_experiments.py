"""Variants of the recipe in one DAG (config `experiments:`): dry-run job counts against the single run, at micro and
at paper scale, and two variants run for real at micro scale beside the main run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from abacus_repro import dryrun
from abacus_repro.settings import VALIDATION_SOURCES

from ..conftest import REPO_ROOT, micro_config, write_micro_config
from .test_workflow import _snakemake

pytestmark = pytest.mark.integration

PHASES = ["base", "cosine", "anneal", "sft"]
EVAL_RULES = {"eval_code": 2, "eval_infill": 1, "eval_livecodebench": 1, "eval_general": 1, "eval_summary": 1}
# A variant that changes training alone, and one that changes the data (the quality filter off).
TWO_VARIANTS = {"wsd": {"train.schedule.kind": "wsd"}, "noquality": {"text.classifier.enabled": False}}


def _dry_run_counts(config: dict, root: Path) -> dict[str, int]:
    root.mkdir(parents=True, exist_ok=True)
    configfile = root / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    output = dryrun.run_dry_run(configfile, root)
    counts, jobs = dryrun.parse_job_counts(output), dryrun.parse_jobs(output)
    dryrun.check_jobs_match_counts(jobs, counts)
    return counts


def _with_experiments(config: dict, variants: dict, seeds: list[int] | None = None) -> dict:
    return {**config, "experiments": {"variants": variants, "seeds": seeds or []}}


@pytest.fixture(scope="module")
def micro_counts(tmp_path_factory) -> dict[str, dict[str, int]]:
    root = tmp_path_factory.mktemp("experiments-dry")
    config = micro_config()
    return {
        "single": _dry_run_counts(config, root / "single"),
        "two": _dry_run_counts(_with_experiments(config, TWO_VARIANTS), root / "two"),
        "seeds": _dry_run_counts(_with_experiments(config, {"wsd": TWO_VARIANTS["wsd"]}, [1, 2]), root / "seeds"),
    }


def test_two_variants_share_every_job_upstream_of_what_they_change(micro_counts):
    single, two = micro_counts["single"], micro_counts["two"]
    # The variants re-run nothing of ingestion and code cleaning, the judge, the classifier's training, the
    # tokenizer, the initial model or the validation split and its tokens.
    shared = [
        "ingest_code",
        "ingest_stackexchange",
        "ingest_docs",
        "ingest_math",
        "code_clean",
        "code_minhash",
        "code_lsh",
        "code_near_clusters",
        "code_finish",
        "code_funnel",
        "text_judge",
        "text_classifier_train",
        "docs_filter",
        "sft_collect",
        "sft_semi_instruct",
        "train_tokenizer",
        "init_model",
        "validation_split",
        "tokenize_validation",
        "export_gguf",
        "provenance",
    ]
    assert {rule: two.get(rule) for rule in shared} == {rule: single.get(rule) for rule in shared}
    # noquality's text, and all that reads it, is its own; wsd's data are the main run's.
    assert two["text_classifier_apply"] == two["text_stats"] == 2
    assert two["decontaminate"] == 2 * single["decontaminate"]
    assert two["sft_semdedup"] == two["sft_dataset"] == 2
    assert two["mixture"] == 2 * single["mixture"]
    assert two["tokenize"] == 2 * single["tokenize"]
    # Each variant trains every phase and is evaluated; one comparison.
    assert two["train"] == 3 * single["train"] == 3 * len(PHASES)
    for rule, per_run in EVAL_RULES.items():
        assert two[rule] == 3 * per_run, rule
    assert two["experiments_compare"] == 1 and "experiments_compare" not in single


def test_seeds_train_and_initialise_each_run_and_share_the_data(micro_counts):
    single, seeds = micro_counts["single"], micro_counts["seeds"]
    assert seeds["init_model"] == 1 + 2  # train.seed decides the tiny model's initialisation
    assert seeds["train"] == (1 + 2) * len(PHASES)
    for rule in ("mixture", "tokenize", "code_clean", "sft_dataset", "validation_split", "train_tokenizer"):
        assert seeds[rule] == single[rule], rule


def test_paper_scale_variants_reuse_the_cleaning_of_512_shards(tmp_path):
    root = tmp_path / "paper"
    configfile = dryrun.write_placeholder_config(REPO_ROOT / "config" / "abacus-2.7b.yaml", root)
    config = yaml.safe_load(configfile.read_text())
    variants = {"wsd": {"train.schedule.kind": "wsd"}, "plain": {"train.attention": "plain"}}
    counts = _dry_run_counts(_with_experiments(config, variants, [1, 2]), root)
    assert counts["code_clean"] == counts["code_finish"] == 512
    # From the published checkpoint: cosine, anneal and SFT per run; its copy is shared by every seed.
    assert counts["train"] == (1 + 2 * 2) * 3
    assert counts["init_model"] == 1
    assert counts["mixture"] == 2 and counts["tokenize"] == 3


def _json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def experiment_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("experiments-run")
    config = write_micro_config(workdir, _with_experiments(micro_config(), TWO_VARIANTS))
    result = _snakemake(workdir, config)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"workflow failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir


def test_each_variant_has_its_own_outputs_and_only_those(experiment_run):
    runs = experiment_run / "results/experiments"
    for name in TWO_VARIANTS:
        for phase in PHASES:
            assert (runs / name / f"train/{phase}/metrics.jsonl").is_file(), (name, phase)
        assert (runs / name / "eval/summary.json").is_file()
    # wsd changed training alone: its data are the main run's files.
    assert not (runs / "wsd" / "mixture").exists() and not (runs / "wsd" / "code").exists()
    assert (runs / "noquality" / "text/stats.json").is_file() and not (runs / "noquality" / "code").exists()
    assert not (experiment_run / "results/experiments/noquality/text/judge").exists()


def test_each_run_trains_with_its_overrides(experiment_run):
    wsd = experiment_run / "results/experiments/wsd/train/cosine/metrics.jsonl"
    rates = [r["lr"] for r in map(json.loads, wsd.read_text().splitlines()) if r["kind"] == "train"]
    assert rates[-1] == max(rates) and len(set(rates[-10:])) == 1  # WSD's stable phase: the peak after warmup
    main = experiment_run / "results/train/cosine/metrics.jsonl"
    main_rates = [r["lr"] for r in map(json.loads, main.read_text().splitlines()) if r["kind"] == "train"]
    assert max(main_rates) > main_rates[-1]  # WCL's cosine after warmup
    stats = _json(experiment_run / "results/experiments/noquality/text/stackexchange/stats.json")
    assert stats["read"] == stats["kept"]  # the quality filter off keeps every thread


def test_every_variant_is_scored_on_the_same_held_out_rows_none_trains_on(experiment_run):
    held_out = set()
    for source in VALIDATION_SOURCES:
        held_out |= set(pd.read_parquet(experiment_run / f"results/mixture/validation/{source}.parquet")["id"])
    assert held_out
    mixtures = sorted((experiment_run / "results/experiments/noquality/mixture").glob("*.parquet"))
    assert [m.name for m in mixtures] == ["anneal.parquet", "base.parquet", "cosine.parquet"]
    for mixture in mixtures:
        assert not held_out & set(pd.read_parquet(mixture)["id"]), mixture
    # The SFT phase reads its data set whole and leaves the held-out SFT rows out when tokenizing.
    sft = _json(experiment_run / "results/experiments/noquality/tokenized/sft/meta.json")
    assert sft["validation_docs"] == _json(experiment_run / "results/tokenized/sft/meta.json")["validation_docs"] > 0
    for name in ("wsd", "noquality"):
        sources = {
            json.loads(line).get("source")
            for line in (experiment_run / f"results/experiments/{name}/train/anneal/metrics.jsonl").open()
        }
        assert set(VALIDATION_SOURCES) <= sources


def test_the_comparison_reads_every_variant(experiment_run):
    comparison = _json(experiment_run / "results/experiments/comparison.json")
    table = (experiment_run / "results/experiments/comparison.md").read_text()
    assert "wsd" in table and "noquality" in table and "train.schedule.kind" in table
    assert (experiment_run / "results/experiments/validation_loss.png").stat().st_size > 0
    text = json.dumps(comparison)
    for source in VALIDATION_SOURCES:
        assert f'"{source}"' in text
    # Cost: each variant re-ran its own training (benchmark files under benchmarks/rules/experiments/<run>/).
    assert sorted(p.name for p in (experiment_run / "benchmarks/rules/experiments/wsd").glob("train_*.tsv")) == [
        f"train_{phase}.tsv" for phase in sorted(PHASES)
    ]


def test_provenance_covers_the_variants(experiment_run):
    manifest = _json(experiment_run / "results/provenance/manifest.json")
    outputs = {o["path"]: o for o in manifest["outputs"]}
    wsd = outputs["results/experiments/wsd/train/sft/model"]
    assert wsd["rule"] == "train" and wsd["params"]["settings"]["train"]["schedule"]["kind"] == "wsd"
    assert outputs["results/train/sft/model"]["params"]["settings"]["train"]["schedule"]["kind"] == "wcl"
    assert manifest["config"]["experiments"]["variants"] == TWO_VARIANTS


def test_a_second_run_has_nothing_to_do(experiment_run):
    result = _snakemake(experiment_run, experiment_run / "micro.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def _audit(run: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "abacus_repro.cli", "audit", "--directory", str(run), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)


def test_the_audit_checks_and_reproduces_a_variants_data(experiment_run, tmp_path):
    clean = _audit(experiment_run)
    assert clean.returncode == 0, clean.stdout[-4000:] + clean.stderr[-2000:]
    report = tmp_path / "audit.json"
    rerun = _audit(experiment_run, "--rerun", "--rules", "text_classifier_apply", "--json", str(report))
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    findings = {f["path"]: f["status"] for f in json.loads(report.read_text())["rerun"]["findings"]}
    assert findings["results/experiments/noquality/text/stackexchange/kept.parquet"] == "reproduced"
    assert findings["results/text/stackexchange/kept.parquet"] == "reproduced"


def test_the_manifest_lists_each_run_and_what_it_made_itself(experiment_run):
    experiments = _json(experiment_run / "results/provenance/manifest.json")["experiments"]
    assert sorted(experiments) == ["noquality", "wsd"]
    wsd = experiments["wsd"]
    assert wsd["overrides"] == TWO_VARIANTS["wsd"] and wsd["seed"] is None
    assert "results/experiments/wsd/train/sft/model" in wsd["outputs"]
    assert not [path for path in wsd["outputs"] if "/mixture/" in path or "/code/" in path]
