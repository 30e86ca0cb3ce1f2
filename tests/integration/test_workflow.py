"""The whole DAG on the micro configuration, in a temporary directory: outputs exist and make sense."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT, write_micro_config

pytestmark = pytest.mark.integration

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(workdir: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = SNAKEMAKE + [
        "--snakefile",
        str(REPO_ROOT / "workflow/Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *extra,
    ]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("micro-run")
    config = write_micro_config(workdir)
    result = _snakemake(workdir, config)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"workflow failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir


def _json(path: Path):
    return json.loads(path.read_text())


def test_design_outputs_exist(run_dir):
    for rel in [
        "results/code/stats.json",
        "results/text/stats.json",
        "results/mixture/stats.json",
        "results/eval/summary.json",
        "results/eval/summary.md",
        "results/export/verify.json",
        "results/export/Modelfile",
        "results/provenance/manifest.json",
    ]:
        assert (run_dir / rel).is_file(), rel
    for phase in ["base", "cosine", "anneal", "sft"]:
        for name in ["metrics.jsonl", "loss.png", "model/config.json"]:
            assert (run_dir / f"results/train/{phase}/{name}").is_file(), (phase, name)


def test_code_funnel_adds_up(run_dir):
    stats = _json(run_dir / "results/code/stats.json")
    assert stats["read"] > 0 and stats["kept"] > 0
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    for shard_stats in sorted((run_dir / "results/code/shards").glob("*/stats.json")):
        part = _json(shard_stats)
        assert part["read"] == part["kept"] + sum(part["dropped"].values())


def test_text_funnels_add_up(run_dir):
    stats = _json(run_dir / "results/text/stats.json")
    text = json.dumps(stats)
    assert "precision" in text and "recall" in text

    def walk(node):
        if isinstance(node, dict):
            if {"read", "kept", "dropped"} <= node.keys() and isinstance(node["dropped"], dict):
                assert node["read"] == node["kept"] + sum(node["dropped"].values()), node
            for value in node.values():
                walk(value)

    walk(stats)


def test_loss_is_finite_and_falls(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results/train/base/metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row and "step" in row]
    assert len(losses) >= 4
    assert all(math.isfinite(x) for x in losses)
    head, tail = losses[: max(1, len(losses) // 4)], losses[-max(1, len(losses) // 4) :]
    assert sum(tail) / len(tail) < sum(head) / len(head) - 0.5


def test_gguf_loads_in_llama_cpp(run_dir):
    verify = _json(run_dir / "results/export/verify.json")
    gguf = run_dir / "results/export/model-F16.gguf"
    assert gguf.is_file() and gguf.stat().st_size > 0
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=128, verbose=False)
    assert llm.n_vocab() > 0
    assert verify  # the export rule wrote its own comparison


def test_eval_summary_has_scores(run_dir):
    summary = _json(run_dir / "results/eval/summary.json")
    assert summary, "empty summary"
    table = (run_dir / "results/eval/summary.md").read_text()
    assert "HumanEval" in table


def test_second_run_has_nothing_to_do(run_dir):
    config = run_dir / "micro.yaml"
    result = _snakemake(run_dir, config, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_mixture_meets_configured_shares(run_dir):
    stats = _json(run_dir / "results/mixture/stats.json")
    phases = stats["phases"]
    assert set(phases) == {"base", "cosine", "anneal"}
    for name, phase in phases.items():
        assert phase["max_share_error"] < 0.02, (name, phase["max_share_error"])
    assert phases["anneal"]["sources"]["sft"]["tokens"] > 0  # the anneal phase mixes SFT data in


def test_provenance_names_the_producing_rules(run_dir):
    manifest = _json(run_dir / "results/provenance/manifest.json")
    rules = {out["path"]: out["rule"] for out in manifest["outputs"]}
    assert rules["results/code/stats.json"] == "code_funnel"
    assert rules["results/train/sft/model"] == "train"
    assert manifest["seeds"]["seed"] == 7


def test_the_report_opens_with_the_resolved_config_which_provenance_records(run_dir):
    """Report users read the run's configuration on the first page: the --configfile plus the schema's defaults."""
    from abacus_repro.config import load_config

    report = run_dir / "report.html"
    result = _snakemake(run_dir, run_dir / "micro.yaml", "--report", str(report))
    assert result.returncode == 0, result.stderr[-4000:]
    resolved = load_config(run_dir / "micro.yaml")
    assert _json(run_dir / "results/provenance/manifest.json")["config"] == resolved
    html = report.read_text(encoding="utf-8")
    first_page = html[html.index("The resolved configuration of this run") :][:400_000]
    # A key only the schema's defaults supply, and a value only micro.yaml states, are both shown.
    for key in ("max_duplicate_line_fraction", "include_repos", "cpu_procs_per_node"):
        assert f"&quot;{key}&quot;" in first_page, key
    assert str(resolved["seed"]) in first_page


def test_code_documents_are_fim_transformed_at_the_configured_rate(run_dir):
    """micro.yaml asks pack.fim.rate 0.5: about half the pretraining code documents become PSM/SPM (counted over
    the three phases: the anneal phase has only a handful), in both orders; SFT rows never."""
    metas = [_json(run_dir / f"results/tokenized/{phase}/meta.json")["fim"] for phase in ("base", "cosine", "anneal")]
    assert all(fim["code_documents"] > 0 and fim["rate"] == 0.5 for fim in metas), metas
    code = sum(fim["code_documents"] for fim in metas)
    psm, spm = (sum(fim[f"{mode}_documents"] for fim in metas) for mode in ("psm", "spm"))
    assert 0.3 < (psm + spm) / code < 0.7 and psm > 0 and spm > 0, metas
    assert _json(run_dir / "results/tokenized/sft/meta.json")["fim"] is None
