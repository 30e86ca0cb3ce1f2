"""HumanEval(+) through the real evalplus: canonical solutions pass, wrong ones fail, nothing waits on stdin."""

from __future__ import annotations

import json

import pytest

from abacus_repro.cli import main as cli_main
from abacus_repro.evaluate import humaneval as he
from abacus_repro.settings import EvalSettings

from .evaluate_fixtures import ARCHITECTURES, build_tiny_model, shared_file

MINI = "code_eval/HumanEvalPlus-Mini.jsonl.gz"


@pytest.fixture(scope="module")
def mini_path():
    return shared_file(MINI)


@pytest.fixture(scope="module")
def first_five(mini_path):
    return he.load_problems(mini_path)[:5]


def _job(dataset: str, **eval_settings) -> he.EvalplusJob:
    """The job the workflow would give ``dataset`` with these eval settings (the others at their defaults)."""
    return he.EvalplusJob.from_eval(EvalSettings.model_validate(eval_settings), dataset)


def _problem_file(tmp_path, problems):
    path = tmp_path / "problems.jsonl"
    he.write_jsonl(path, problems)
    return path


def test_selfcheck_canonical_solutions_score_one(mini_path, tmp_path):
    result = he.selfcheck("humaneval", mini_path, tmp_path / "work", limit=5)
    assert result["status"] == "ok"
    assert result["pass@1"] == {"base": 1.0, "plus": 1.0}
    assert result["n"] == 5 and result["limit"] == 5
    assert result["dataset"]["version"] == "HumanEvalPlus-Mini v0.1.10"
    assert result["dataset"]["n_total"] == 164
    assert result["failed"] == [] and result["consistent"]
    assert list(result["tasks"]) == [f"HumanEval/{i}" for i in range(5)]
    assert result["regraded"] == {}


def test_find_zero_is_regraded_with_its_oracle(mini_path, tmp_path):
    # evalplus 0.3.1 fails every solution of HumanEval/32 (find_zero), the canonical one included; its oracle,
    # applied in our sandbox, passes the canonical solution and fails a wrong one.
    problems = [p for p in he.load_problems(mini_path) if p["task_id"] in ("HumanEval/31", "HumanEval/32")]
    samples = he.canonical_samples(problems)
    results = he.run_evalplus(he.get_dataset("humaneval"), _problem_file(tmp_path, problems), samples, tmp_path / "e")
    assert he.pass_at_1(results, ["HumanEval/32"])["tasks"]["HumanEval/32"]["base"] == "fail"  # evalplus alone
    regraded = he.regrade_with_oracle(results, problems, samples, he.EvalplusLimits(), "0.3.1")
    assert list(regraded) == ["HumanEval/32"] and "PR #241" in regraded["HumanEval/32"]
    scores = he.pass_at_1(results, ["HumanEval/31", "HumanEval/32"])
    assert scores["tasks"] == {
        "HumanEval/31": {"base": "pass", "plus": "pass"},
        "HumanEval/32": {"base": "pass", "plus": "pass"},
    }
    wrong = [{"task_id": "HumanEval/32", "solution": problems[1]["prompt"] + "    return 0.5\n"}]
    he.regrade_with_oracle(results, problems, wrong, he.EvalplusLimits(), "0.3.1")
    assert he.pass_at_1(results, ["HumanEval/32"])["tasks"]["HumanEval/32"] == {"base": "fail", "plus": "fail"}
    assert he.regrade_with_oracle(results, problems, samples, he.EvalplusLimits(), "0.4.0") == {}


def test_wrong_solutions_score_zero_and_reruns_never_wait_on_stdin(first_five, tmp_path):
    benchmark = he.get_dataset("humaneval")
    problems_file = _problem_file(tmp_path, first_five)
    work_dir = tmp_path / "evalplus"
    # First run leaves samples_eval_results.json behind; evalplus would ask on stdin before overwriting it.
    good = he.run_evalplus(benchmark, problems_file, he.canonical_samples(first_five), work_dir)
    assert he.pass_at_1(good, [p["task_id"] for p in first_five])["base"] == 1.0
    wrong = [{"task_id": p["task_id"], "solution": p["prompt"] + "    return None\n"} for p in first_five]
    bad = he.run_evalplus(benchmark, problems_file, wrong, work_dir)
    scores = he.pass_at_1(bad, [p["task_id"] for p in first_five])
    assert scores["base"] == 0.0 and scores["plus"] == 0.0
    assert all(status == {"base": "fail", "plus": "fail"} for status in scores["tasks"].values())
    assert not list(work_dir.glob("*.bak*"))


def test_missing_data_is_skipped_not_failed(tmp_path):
    samples = tmp_path / "samples.jsonl"
    # MBPP: no package ships it, and with downloads off there is no other source than the configured path.
    result = he.evaluate_model(
        _job("mbpp", mbpp={"limit": 3}, data_cache=str(tmp_path / "cache"), download=False),
        tmp_path / "no-model",
        tmp_path / "absent.jsonl.gz",
        tmp_path / "work",
        samples_path=samples,
    )
    assert result["status"] == "skipped"
    assert "absent.jsonl.gz" in result["reason"]
    assert samples.read_text() == ""


def test_broken_data_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"task_id": "HumanEval/0"}\n')
    with pytest.raises(he.InputError, match="broken.jsonl"):
        he.selfcheck("humaneval", broken, tmp_path / "work")


def test_dataset_version_from_hash_then_file_name(tmp_path):
    assert he.dataset_version("x.jsonl", "0" * 64, "HumanEvalPlus") == "HumanEvalPlus (unknown version)"
    assert he.dataset_version("HumanEvalPlus-v0.1.9.jsonl", "0" * 64, "HumanEvalPlus") == "HumanEvalPlus v0.1.9"
    assert he.dataset_version("HumanEvalPlus-Mini-v0.1.10.jsonl", "0" * 64, "HumanEvalPlus") == (
        "HumanEvalPlus-Mini v0.1.10"
    )


def test_base_completion_is_cut_and_sanitised(first_five):
    problem = first_five[0]
    completion = problem["canonical_solution"] + "\n\ndef unrelated():\n    return 1\n"
    cut = he.generation_cut(completion, "base")
    assert "unrelated" not in cut
    solution = he.build_solution(problem, cut, "base")
    assert f"def {problem['entry_point']}(" in solution
    assert problem["canonical_solution"].strip().splitlines()[-1].strip() in solution


def test_chat_answer_restating_the_function_is_kept(first_five):
    problem = first_five[2]
    answer = problem["prompt"].strip() + "\n" + problem["canonical_solution"]
    solution = he.build_solution(problem, answer + "\n```\nSome words after the block.", "chat")
    assert f"def {problem['entry_point']}(" in solution
    assert "Some words" not in solution


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_model_samples_are_scored_end_to_end(arch, mini_path, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model", chat=True, arch=arch)
    samples = tmp_path / "samples.jsonl"
    job = _job("humaneval", max_new_tokens=12, batch_size=4, prompt_style="auto", humaneval={"limit": 3})
    result = he.evaluate_model(job, model_dir, mini_path, tmp_path / "work", samples_path=samples)
    assert result["status"] == "ok" and result["prompt_style"] == "chat"
    assert result["n"] == 3
    assert 0.0 <= result["pass@1"]["plus"] <= result["pass@1"]["base"] <= 1.0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [row["task_id"] for row in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(isinstance(row["solution"], str) for row in rows)
    # evalplus read our 3-problem subset, not the whole file.
    assert len((tmp_path / "work" / "problems.jsonl").read_text().splitlines()) == 3


def test_cli_selfcheck(mini_path, capsys):
    status = cli_main(["eval", "selfcheck", "--dataset", "humaneval", "--path", str(mini_path), "--limit", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "pass@1 base 1.0000, plus 1.0000" in out


def test_selfcheck_retries_timeouts_with_more_time(mini_path, tmp_path, monkeypatch):
    # Limits far below any real run time make canonical solutions time out; the retry's larger limits pass them.
    monkeypatch.setattr(he, "RETRY_SCALE", 20_000)
    tight = he.EvalplusLimits(min_time_limit=5e-5, gt_time_limit_factor=5e-5)
    result = he.selfcheck("humaneval", mini_path, tmp_path / "work", limit=3, limits=tight)
    assert result["passed_on_retry"] and result["failed"] == [] and result["consistent"]
    assert result["pass@1"] == {"base": 1.0, "plus": 1.0}
