"""Provenance joins Snakemake's own record of each output with hashes, the code version and packages."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from abacus_repro.provenance import build_manifest, render_html, render_markdown, write_provenance
from abacus_repro.provenance.manifest import attribute_by_location, seeds_of
from abacus_repro.provenance.rules import RULES, is_data_rule, nondeterminism_reason

from ..conftest import REPO_ROOT
from .provenance_fixtures import fake_run, sha

RULES_INFO = {
    "ingest_math": {
        "code": {
            "script": "workflow/scripts/ingest_math.py",
            "digest": "code-sha256:aaa",
            "files": {"workflow/scripts/ingest_math.py": "1"},
        },
        "params": {"seed": 7, "math": {"n": 3}},
    }
}


def _manifest(root, config=None):
    return build_manifest(
        root / "results", config or {"seed": 9, "train": {"data_seed": 3}}, root, rules=RULES_INFO, repo_dir=REPO_ROOT
    )


def test_manifest_describes_each_output(tmp_path):
    root = fake_run(tmp_path)
    manifest = _manifest(root)
    by_path = {out["path"]: out for out in manifest["outputs"]}
    assert set(by_path) == {
        "results/ingest/docs.json",
        "results/stats.json",
        "results/train/base/model",
        "results/train/base/metrics.jsonl",
        "results/eval/sft/humaneval/result.json",
        "results/eval/sft/humaneval/work/cache.pkl",
    }
    docs = by_path["results/ingest/docs.json"]
    assert docs["rule"] == "ingest_math" and docs["declared"] and docs["deterministic"]
    assert docs["sha256"] == sha(b'{"docs": 3}') and docs["size"] == len(b'{"docs": 3}')
    assert docs["inputs"] == {"data/in.txt": sha(b"input")}
    assert docs["params"] == {"seed": 7, "n": 3, "code": "code-sha256:aaa"}
    assert docs["code_fingerprint"] == "code-sha256:aaa"
    assert docs["start"].startswith("2023-11-14") and docs["end"] > docs["start"] and docs["runtime_s"] == 5.0
    assert docs["host"] == "node-7" and docs["attributed_by"] == "job record"  # the job's own account
    assert docs["log"] == {"logs/ingest_math.log": None} and docs["python"]  # no log file written
    stats = by_path["results/stats.json"]
    assert stats["inputs"] == {"results/ingest/docs.json": docs["sha256"]}  # an input's hash is its output's
    model = by_path["results/train/base/model"]
    assert model["kind"] == "directory" and len(model["files"]) == 2  # hashed file by file, one digest
    assert model["rule"] == "train"
    metrics = by_path["results/train/base/metrics.jsonl"]
    assert not metrics["deterministic"] and "wall-clock" in metrics["nondeterministic_reason"]
    work = by_path["results/eval/sft/humaneval/work/cache.pkl"]
    assert not work["declared"] and work["rule"] == "eval_code" and work["attributed_by"] == "location"
    assert manifest["seeds"] == {"seed": 9, "all": {"seed": 9, "train.data_seed": 3}}
    env = manifest["environment"]
    assert env["packages"]["torch"].startswith("2.13.0") and env["all_packages"]["snakemake"] == "9.27.1"
    assert re.fullmatch(r"3\.\d+\.\d+", env["python"]) and env["host"]
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["code"]["git_commit"]) and isinstance(manifest["code"]["dirty"], bool)
    assert manifest["rules"]["ingest_math"]["seed"] == 7 and manifest["rules"]["ingest_math"]["stage"] == "data"
    assert manifest["outputs_by_rule"] == {"code_funnel": 1, "eval_code": 1, "ingest_math": 1, "train": 2}
    assert manifest["run"]["start"].startswith("2023-11-14")


def test_input_changed_after_the_run_is_flagged(tmp_path):
    root = fake_run(tmp_path)
    (root / "data/in.txt").write_bytes(b"edited")
    by_path = {o["path"]: o for o in _manifest(root)["outputs"]}
    assert by_path["results/ingest/docs.json"]["inputs_changed_since_run"] == ["data/in.txt"]
    assert by_path["results/stats.json"]["inputs_changed_since_run"] == []


def test_own_outputs_and_report_page_are_left_out(tmp_path):
    root = fake_run(tmp_path)
    (root / "results/provenance").mkdir()
    (root / "results/provenance/manifest.json").write_text("{}")
    (root / "results/report.html").write_text("<html>")
    paths = {o["path"] for o in _manifest(root)["outputs"]}
    assert not any(p.startswith("results/provenance") for p in paths) and "results/report.html" not in paths


def test_model_directory_without_record_is_one_output(tmp_path):
    (tmp_path / "results/m").mkdir(parents=True)
    (tmp_path / "results/m/config.json").write_text("{}")
    (tmp_path / "results/m/w.bin").write_bytes(b"w")
    outputs = build_manifest(tmp_path / "results", {}, tmp_path, rules={}, repo_dir=REPO_ROOT)["outputs"]
    assert [o["path"] for o in outputs] == ["results/m"] and outputs[0]["rule"] is None


def test_written_report_lists_outputs(tmp_path):
    root = fake_run(tmp_path)
    out = root / "results/provenance"
    manifest = write_provenance(
        root / "results",
        {"seed": 1},
        root,
        out / "manifest.json",
        out / "report.md",
        html_path=out / "report.html",
        rules=RULES_INFO,
        repo_dir=REPO_ROOT,
    )
    assert json.loads((out / "manifest.json").read_text())["outputs"] == json.loads(json.dumps(manifest["outputs"]))
    report = (out / "report.md").read_text()
    assert "| results/ingest/docs.json | ingest_math |" in report
    assert "| ingest_math | data | yes | workflow/scripts/ingest_math.py |" in report
    assert "| train | train | no: records wall-clock time" in report
    assert report == render_markdown(manifest)
    page = (out / "report.html").read_text()
    assert page == render_html(manifest) and "<td>results/train/base/model</td>" in page
    assert page.count("<tr>") == report.count("\n| ")  # the same rows in both


def test_attribution_by_location_refuses_to_guess():
    owners = {"results/eval/sft/humaneval/result.json": "eval_code", "results/eval/summary.json": "eval_summary"}
    assert attribute_by_location("results/eval/sft/humaneval/work/x.pkl", owners) == "eval_code"
    assert attribute_by_location("results/eval/other/y.json", owners) is None  # two rules own results/eval


def test_seeds_are_found_anywhere_in_the_config():
    assert seeds_of({"seed": 1, "sft": {"shuffle_seed": 2, "seeds": [3]}, "x": {"y": 4}}) == {
        "seed": 1,
        "sft.shuffle_seed": 2,
    }


def test_every_workflow_rule_is_classified():
    rules = set()
    for smk in (REPO_ROOT / "workflow/rules").glob("*.smk"):
        rules.update(re.findall(r"^rule (\w+):", smk.read_text(), flags=re.MULTILINE))
    assert rules - set(RULES) == set(), "add new rules to abacus_repro.provenance.rules.RULES"
    assert is_data_rule("tokenize") and not is_data_rule("train") and not is_data_rule("eval_summary")
    assert nondeterminism_reason("train", "results/train/sft/metrics.jsonl")
    assert nondeterminism_reason("train", "results/train/sft/model") is None


def test_cli_writes_manifest_for_a_finished_run(tmp_path):
    root = fake_run(tmp_path)
    (root / "config").mkdir()
    (root / "config/config.yaml").write_text("seed: 5\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "abacus_repro.cli",
            "provenance",
            "--directory",
            str(root),
            "--config",
            str(root / "config/config.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((root / "results/provenance/manifest.json").read_text())
    assert manifest["seeds"]["seed"] == 5 and len(manifest["outputs"]) == 6
    assert manifest["rules"]["train"]["code"]["script"] == "workflow/scripts/train.py"  # read from the rule files
    assert (root / "results/provenance/report.html").is_file()


def test_a_record_of_another_directorys_job_is_not_this_runs_output(tmp_path):
    """A script run by hand from the run directory on files elsewhere leaves a record naming them: not outputs."""
    from abacus_repro.job_record import JobRecords

    from .provenance_fixtures import write_record

    root = fake_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere" / "mixture" / "base.parquet"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"not this run's")
    write_record(root, str(elsewhere), "mixture", [], {}, 1.7e9, wildcards={"phase": "base"})
    assert JobRecords(root).of(str(elsewhere)) is None
    assert str(elsewhere) not in {o["path"] for o in _manifest(root)["outputs"]}
