"""MBPP(+) through the real evalplus: Google's sanitized MBPP (base tests) and evalplus's MBPP+ layout."""

from __future__ import annotations

import json

import pytest

from abacus_repro.cli import main as cli_main
from abacus_repro.evaluate import humaneval as he
from abacus_repro.evaluate import mbpp
from abacus_repro.settings import EvalSettings

from .evaluate_fixtures import build_tiny_model, shared_data_dir, shared_file

GOOGLE = "code_eval/sanitized-mbpp.json"


@pytest.fixture(scope="module")
def google_path():
    return shared_file(GOOGLE)


def test_google_layout_converts_with_every_left_out_task_named(google_path):
    problems, dropped = mbpp.load_google_mbpp(google_path)
    assert len(problems) + len(dropped) == 427
    assert len(problems) >= 400
    first = problems[0]
    assert first["task_id"] == "Mbpp/2" and first["entry_point"] == "similar_elements"
    assert first["prompt"].startswith('"""\nWrite a function to find the shared elements')
    assert first["base_input"][0] == [(3, 4, 5, 6), (5, 7, 4, 10)] and first["plus_input"] == []
    # 14*14 is an expression, not a literal: the test's input cannot be stored, so the task is named and left out.
    assert "not a Python literal" in dropped["Mbpp/803"]
    assert all(why for why in dropped.values())


def test_inputs_must_survive_evalplus_json():
    # evalplus turns Mbpp/2's lists back into tuples; an unknown task keeps lists, so tuples there cannot survive.
    assert mbpp.survives_evalplus_json("Mbpp/2", [[(1, 2), (3,)]])
    assert not mbpp.survives_evalplus_json("Mbpp/99999", [[(1, 2)]])
    assert mbpp.survives_evalplus_json("Mbpp/99999", [[[1, 2], {"a": 1.5}, None]])
    assert not mbpp.survives_evalplus_json("Mbpp/99999", [[1 + 2j]])


def test_selfcheck_on_google_file_scores_base_one(google_path, tmp_path):
    result = he.selfcheck("mbpp", google_path, tmp_path / "work", limit=8)
    assert result["status"] == "ok" and result["consistent"]
    assert result["pass@1"] == {"base": 1.0, "plus": None}
    assert result["dataset"]["version"] == "sanitized MBPP (Google, 427 tasks)"
    assert result["dataset"]["plus_tests"] is False and "Mbpp/803" in result["dataset"]["left_out"]
    assert result["n"] == 8 and all(status["plus"] is None for status in result["tasks"].values())


def _plus_problem() -> dict:
    """A problem in evalplus's MBPP+ layout, written here: base inputs, plus inputs with an edge case."""
    return {
        "task_id": "Mbpp/9001",
        "prompt": '"""\nWrite a function that returns the largest element of a list, or None for an empty list.\n'
        'assert largest([1, 5, 3]) == 5\n"""\n',
        "entry_point": "largest",
        "canonical_solution": "\ndef largest(xs):\n    return max(xs) if xs else None\n",
        "base_input": [[[1, 5, 3]], [[-2, -7]]],
        "plus_input": [[[]], [[0]], [[3, 3, 3]]],
        "atol": 0,
        "contract": "",
        "assertion": "\nassert largest([1, 5, 3]) == 5\n",
    }


def test_plus_tests_catch_what_base_tests_miss(tmp_path):
    problems_file = tmp_path / "MbppPlus-sample.jsonl"
    he.write_jsonl(problems_file, [_plus_problem()])
    benchmark = he.get_dataset("mbpp")
    canonical = he.run_evalplus(benchmark, problems_file, he.canonical_samples([_plus_problem()]), tmp_path / "a")
    assert he.pass_at_1(canonical, ["Mbpp/9001"])["tasks"]["Mbpp/9001"] == {"base": "pass", "plus": "pass"}
    # Right on the base tests, wrong on the empty list: MBPP base passes, MBPP+ fails.
    naive = [{"task_id": "Mbpp/9001", "solution": "def largest(xs):\n    return max(xs)\n"}]
    scores = he.pass_at_1(he.run_evalplus(benchmark, problems_file, naive, tmp_path / "b"), ["Mbpp/9001"])
    assert scores["base"] == 1.0 and scores["plus"] == 0.0


def test_mbpp_plus_release_file_when_present(tmp_path):
    path = shared_data_dir() / "code_eval" / "MbppPlus.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} (evalplus's MBPP+ v0.2.0 release file) is not present")
    result = he.selfcheck("mbpp", path, tmp_path / "work", limit=5)
    assert result["pass@1"] == {"base": 1.0, "plus": 1.0}
    assert result["dataset"]["version"] == "MbppPlus v0.2.0"


def test_resource_bound_tasks_are_named_only_under_default_limits():
    assert set(he.unpassable_tasks(["Mbpp/255", "Mbpp/630", "Mbpp/2"])) == {"Mbpp/255", "Mbpp/630"}
    roomy = he.EvalplusLimits(max_memory_mb=he.RESOURCE_BOUND_MEMORY_MB)
    assert he.unpassable_tasks(["Mbpp/255", "Mbpp/630"], roomy) == {}
    assert list(he.unpassable_tasks(["Mbpp/599"], roomy)) == ["Mbpp/599"]  # evalplus's fixed 60 s
    configured = EvalSettings.model_validate({"evalplus": {"max_memory_mb": 8192}}).evalplus
    assert configured == he.EvalplusLimits(min_time_limit=1.0, gt_time_limit_factor=4.0, max_memory_mb=8192)


def test_model_samples_on_mbpp_base_prompts(google_path, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model", chat=False)
    samples = tmp_path / "samples.jsonl"
    config = EvalSettings.model_validate({"max_new_tokens": 8, "batch_size": 4, "mbpp": {"limit": 3}})
    job = he.EvalplusJob.from_eval(config, "mbpp")
    result = he.evaluate_model(job, model_dir, google_path, tmp_path / "work", samples_path=samples)
    assert result["status"] == "ok" and result["prompt_style"] == "base" and result["n"] == 3
    assert result["pass@1"]["plus"] is None and 0.0 <= result["pass@1"]["base"] <= 1.0
    assert result["limits"] == {"min_time_limit": 1.0, "gt_time_limit_factor": 4.0, "max_memory_mb": 4096}
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [row["task_id"] for row in rows] == ["Mbpp/2", "Mbpp/3", "Mbpp/4"]
    # evalplus's MBPP stop sequences for base prompts, without the HumanEval-only "\n#".
    assert "\nassert" in he.stop_sequences("base", "mbpp") and "\n#" not in he.stop_sequences("base", "mbpp")


def test_cli_selfcheck_mbpp(google_path, capsys):
    status = cli_main(["eval", "selfcheck", "--dataset", "mbpp", "--path", str(google_path), "--limit", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "pass@1 base 1.0000, plus n/a (the file has no plus tests)" in out
    assert "Mbpp/803 left out of the conversion" in out
