"""LiveCodeBench: the official release format, the date window, grading in the sandbox, prompts, whole runs.

The problems are hand-written in LiveCodeBench's release format (tests/integration/data/), with reference
solutions: the shared data has LiveCodeBench's few-shot exemplars but no problems with tests.
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

import pytest

from abacus_repro.cli import main as cli_main
from abacus_repro.errors import InputError
from abacus_repro.evaluate import _lcb_check
from abacus_repro.evaluate import livecodebench as lcb
from abacus_repro.settings import EvalSettings

from .evaluate_fixtures import REPO_ROOT, build_tiny_model, shared_data_dir

DATA = REPO_ROOT / "tests" / "integration" / "data"
PROBLEMS = DATA / "livecodebench_sample.jsonl"
SOLUTIONS = DATA / "livecodebench_sample_solutions.jsonl"
# Short limits: the programs here are tiny, and a program that never ends costs one limit (CPU, 4x on the wall).
LIMITS = lcb.GradingLimits(timeout_s=0.5, memory_mb=512)


def _job(**eval_settings) -> lcb.LiveCodeBenchJob:
    """The job the workflow would give LiveCodeBench with these eval settings (the others at their defaults)."""
    return lcb.LiveCodeBenchJob.from_eval(EvalSettings.model_validate(eval_settings))


@pytest.fixture(scope="module")
def problems():
    return {p.question_id: p for p in lcb.load_problems([PROBLEMS])}


@pytest.fixture(scope="module")
def references():
    return {row["question_id"]: row["code"] for row in map(json.loads, SOLUTIONS.read_text().splitlines())}


def test_release_format_is_read_in_both_test_encodings(problems):
    assert len(problems) == 7
    stdin, functional = problems["sample_a"], problems["sample_d"]
    assert stdin.kind == "stdin" and stdin.func_name is None and stdin.platform == "atcoder"
    assert functional.kind == "functional" and functional.func_name == "maximumPairSum"
    # sample_a's private tests are base64(zlib(pickle(json))); sample_d's are plain JSON.
    assert [t.output for t in stdin.private_tests] == ["0\n", "2000000000\n"]
    assert [t.input for t in functional.private_tests] == ["[2, 2]", "[-1, -2, -3]"]
    assert stdin.tests == stdin.public_tests + stdin.private_tests


def test_compressed_tests_never_unpickle_objects():
    plain = [{"input": "1\n", "output": "1\n", "testtype": "stdin"}]
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(plain)))).decode()
    assert lcb.decode_test_cases(packed) == plain
    hostile = base64.b64encode(zlib.compress(pickle.dumps(Path("/etc")))).decode()
    with pytest.raises(ValueError, match="refusing to load"):
        lcb.decode_test_cases(hostile)


def test_window_keeps_calendar_days_at_both_ends(problems):
    ordered = list(problems.values())
    kept = [p.question_id for p in lcb.in_window(ordered, "2024-01-01", "2024-09-30")]
    # 2023-12-31T23:59 and 2024-10-01T00:00 fall outside; 2024-09-30T20:00 is inside.
    assert kept == ["sample_a", "sample_b", "sample_c", "sample_d", "sample_e"]
    assert [p.question_id for p in lcb.in_window(ordered, "2024-06-01", "2024-06-30")] == ["sample_d"]
    with pytest.raises(InputError, match="before"):
        lcb.in_window(ordered, "2024-09-01", "2024-01-01")
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        lcb.in_window(ordered, "2024/01/01", "2024-09-30")


def test_reference_solutions_pass_every_test():
    result = lcb.score_solutions([PROBLEMS], SOLUTIONS, workers=2)
    assert result["status"] == "ok" and result["pass@1"] == 1.0 and result["failed"] == {}
    assert result["n"] == 5 and result["dataset"]["n_total"] == 7 and result["dataset"]["n_in_window"] == 5
    assert result["dataset"]["functional"] == 2 and result["dataset"]["stdin"] == 3
    assert result["by_difficulty"]["easy"] == {"pass@1": 1.0, "n": 3}


@pytest.mark.parametrize(
    ("question_id", "code", "verdict", "failed_test"),
    [
        ("sample_a", "a, b = map(int, input().split())\nprint(a - b)\n", "wrong answer", 0),
        # Right on the public test only: a private test catches it.
        ("sample_a", "a, b = map(int, input().split())\nprint(8 if a == 3 else a + b + 1)\n", "wrong answer", 1),
        ("sample_a", "print(int(input()) + )\n", "compile error: SyntaxError", None),
        ("sample_a", "raise ValueError('no')\n", "runtime error: ValueError", 0),
        ("sample_a", "while True:\n    pass\n", "time limit exceeded", 0),
        ("sample_b", "print(2.5)\nprint(4)\nprint('extra')\n", "wrong answer", 0),
        (
            "sample_d",
            "class Solution:\n    def maximumPairSum(self, nums):\n        return max(nums)\n",
            "wrong answer",
            0,
        ),
        (
            "sample_d",
            "class Solution:\n    def otherName(self, nums):\n        return 0\n",
            "runtime error: AttributeError",
            0,
        ),
        ("sample_d", "", "no code", None),
    ],
)
def test_wrong_programs_fail_with_the_reason(problems, question_id, code, verdict, failed_test):
    result = lcb.grade(problems[question_id], code, LIMITS)
    assert result["passed"] is False
    assert result["verdict"] == verdict and result["failed_test"] == failed_test


def test_grading_stops_at_the_first_failure(problems):
    # Every test would time out; after the first, the rest are not run at all.
    result = lcb.grade(problems["sample_c"], "import time\nwhile True:\n    time.sleep(0.01)\n", LIMITS)
    assert result["verdict"] == "time limit exceeded" and result["failed_test"] == 0


def test_stdin_programs_may_read_and_write_every_way(problems):
    buffered = "import sys\nnums = sys.stdin.buffer.read().split()\nsys.stdout.buffer.write(str(int(nums[0]) + int(nums[1])).encode())\n"
    prelude_names = "print(sum(map(int, stdin.readline().split())))\n"  # `stdin` from LiveCodeBench's prelude
    guarded = "def main():\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()\n"
    for code in (buffered, prelude_names, guarded):
        assert lcb.grade(problems["sample_a"], code, LIMITS)["passed"], code


def test_output_comparison_follows_livecodebench():
    same = _lcb_check._abacus_same_stdout
    assert same("2.50\n4\n", "2.5\n4")  # numbers compare as decimals
    assert same("  8  \n\n", "8\n")  # surrounding whitespace goes
    assert not same("1.0000001\n", "1\n")  # but decimals compare exactly
    assert not same("8\n8\n", "8\n")  # line counts must agree
    assert not same("yes\n", "Yes\n")


def test_prompts_follow_livecodebench(problems, tmp_path):
    exemplars = lcb.load_exemplars(shared_data_dir() / "eval" / "livecodebench")
    if exemplars is None:
        pytest.skip("LiveCodeBench's exemplar files are not in the shared data")
    functional = lcb.base_prompt(problems["sample_d"], exemplars)
    assert functional.startswith("### Question\n") and "### Starter Code\n" in functional
    assert functional.endswith(problems["sample_d"].starter_code + "\n\n### Answer\n\n")
    assert exemplars["func"][0]["answer"] in functional
    stdin = lcb.base_prompt(problems["sample_a"], exemplars)
    assert "### Starter Code" not in stdin and exemplars["stdin"][0]["answer"] in stdin
    assert lcb.stop_sequences("base") == ["###"]

    chat = lcb.question_text(problems["sample_a"])
    assert chat.startswith("### Question:\n") and "# YOUR CODE HERE" in chat
    assert chat.endswith("### Answer: (use the provided format with backticks)\n\n")
    assert "```python\n" + problems["sample_d"].starter_code in lcb.question_text(problems["sample_d"])


def test_code_extraction():
    answer = "Here:\n```python\nprint(1)\n```\nand better:\n```python\nprint(2)\n```\nDone."
    assert lcb.extract_code(answer, "chat") == "print(2)"
    assert lcb.extract_code("```python\nprint(1)\n", "chat") == ""  # an unclosed block is no answer
    assert lcb.extract_code("\n  print(3)\n\n", "base") == "print(3)"


def test_bad_release_file_names_the_file_and_line(tmp_path):
    rows = [json.loads(line) for line in PROBLEMS.read_text().splitlines()]
    broken = dict(rows[0], private_test_cases="not base64 at all!")
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(rows[1]) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(InputError, match=r"test\.jsonl: problem on line 2: neither JSON nor base64"):
        lcb.load_problems([path])
    path.write_text(json.dumps({k: v for k, v in rows[0].items() if k != "metadata"}) + "\n")
    with pytest.raises(InputError, match="lacks LiveCodeBench fields"):
        lcb.load_problems([path])
    with pytest.raises(InputError, match="also appears"):
        lcb.load_problems([PROBLEMS, PROBLEMS])


def test_missing_or_empty_window_is_skipped(tmp_path):
    assert lcb.evaluate_model(_job(), "no-model", None, None)["status"] == "skipped"
    job = _job(livecodebench={"start_date": "2030-01-01", "end_date": "2030-12-31"})
    result = lcb.evaluate_model(job, "no-model", [PROBLEMS], None)
    assert result["status"] == "skipped" and "2030-01-01..2030-12-31" in result["reason"]


@pytest.mark.parametrize("chat", [True, False])
def test_model_samples_are_graded_end_to_end(chat, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model", chat=chat)
    samples = tmp_path / "samples.jsonl"
    job = _job(max_new_tokens=12, batch_size=2, livecodebench={"limit": 4, "timeout_s": 2})
    result = lcb.evaluate_model(
        job, model_dir, [PROBLEMS], shared_data_dir() / "eval" / "livecodebench", samples, threads=2
    )
    if not chat and result["status"] == "skipped":
        pytest.skip(result["reason"])  # base prompts need the shared exemplars
    assert result["status"] == "ok" and result["n"] == 4
    assert result["prompt_style"] == ("chat" if chat else "base")
    assert 0.0 <= result["pass@1"] <= 1.0 and set(result["problems"]) == {
        "sample_a",
        "sample_b",
        "sample_c",
        "sample_d",
    }
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [row["question_id"] for row in rows] == ["sample_a", "sample_b", "sample_c", "sample_d"]
    assert all(row["verdict"] == result["problems"][row["question_id"]] for row in rows)


def test_cli_selfcheck_livecodebench(capsys):
    status = cli_main(
        ["eval", "selfcheck", "--dataset", "livecodebench", "--path", str(PROBLEMS), "--solutions", str(SOLUTIONS)]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "livecodebench selfcheck on 5 problems (2024-01-01..2024-09-30): pass@1 1.0000" in out
