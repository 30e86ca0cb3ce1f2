"""General benchmarks through the real lm-eval on local files: ARC-Easy scores, missing data is skipped."""

from __future__ import annotations

import pytest

from abacus_repro.config import resolved_section
from abacus_repro.evaluate import general
from abacus_repro.settings import EvalSettings

from .evaluate_fixtures import ARCHITECTURES, build_tiny_model, shared_data_dir, shared_file


def _job(**eval_settings) -> general.GeneralJob:
    """The job the workflow would give the general benchmarks with these eval settings (resolved as a config)."""
    return general.GeneralJob.from_eval(EvalSettings.model_validate(resolved_section("eval", eval_settings)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"), chat=True)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_arc_easy_through_lm_eval(arch, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model", chat=True, arch=arch)
    data = shared_file("eval/arc_easy/arc_easy_first300.jsonl")
    job = _job(batch_size=8, general={"tasks": ["arc_easy"], "limit": 12})
    result = general.evaluate_model(job, model_dir, shared_data_dir(), tmp_path / "work", threads=1)
    arc = result["tasks"]["arc_easy"]
    assert arc["status"] == "ok"
    assert arc["n"] == 12
    assert 0.0 <= arc["score"] <= 1.0 and 0.0 <= arc["metrics"]["acc_norm"] <= 1.0
    assert arc["score"] * 12 == pytest.approx(round(arc["score"] * 12))  # a fraction of 12 answers
    assert arc["data"][0]["path"] == str(data)
    assert len(arc["data"][0]["sha256"]) == 64
    assert result["lm_eval_version"] == "0.4.13"


def test_mmlu_five_shot_from_csv(model_dir, tmp_path):
    shared_file("eval/mmlu/test/machine_learning_test.csv")
    job = _job(batch_size=8, general={"tasks": ["mmlu"], "limit": 2})
    result = general.evaluate_model(job, model_dir, shared_data_dir(), tmp_path / "work", threads=1)
    mmlu = result["tasks"]["mmlu"]
    assert mmlu["status"] == "ok" and mmlu["num_fewshot"] == 5
    subjects = general.mmlu_subjects(shared_data_dir())
    assert mmlu["n"] == 2 * len(subjects)
    assert set(mmlu["subtasks"]) == {f"abacus_mmlu_{s}" for s in subjects}
    assert 0.0 <= mmlu["score"] <= 1.0


def test_missing_data_and_unknown_tasks_are_skipped(tmp_path):
    job = _job(general={"tasks": ["arc_easy", "mmlu", "gsm8k", "bbh"], "limit": 5})
    # No benchmark can run, so the (absent) model is never loaded.
    result = general.evaluate_model(job, tmp_path / "no-model", tmp_path / "empty", tmp_path / "work")
    tasks = result["tasks"]
    assert list(tasks) == ["arc_easy", "mmlu", "gsm8k", "bbh"]
    assert all(task["status"] == "skipped" for task in tasks.values())
    assert "arc_easy_first300.jsonl" in tasks["arc_easy"]["reason"]
    assert "test_first300.jsonl" in tasks["gsm8k"]["reason"] and "train_first20.jsonl" in tasks["gsm8k"]["reason"]
    assert "cot-prompts" in tasks["bbh"]["reason"]
    assert "no lm-eval task definition" in general.render_tasks(["nope"], tmp_path, tmp_path / "t")["nope"]
    with pytest.raises(general.InputError, match="unknown keys"):
        general.data_locations(tmp_path, {"arc": "x"})


def test_rendered_task_files_name_real_paths(tmp_path):
    shared_file("eval/mmlu")
    rendered = general.render_tasks(["arc_easy", "mmlu"], shared_data_dir(), tmp_path)
    texts = {path.name: path.read_text() for path in tmp_path.glob("*.yaml")}
    assert "arc_easy.yaml" in texts and "mmlu_group.yaml" in texts
    assert all("${" not in text for text in texts.values())
    assert str(shared_data_dir()) in texts["arc_easy.yaml"]
    assert rendered["mmlu"].lm_eval_name == "abacus_mmlu"


def test_chinese_and_hellaswag_tasks(model_dir, tmp_path):
    for relative in ("eval/ceval/val", "eval/cmmlu/test", "eval/hellaswag/hellaswag_val_full_first300.txt"):
        shared_file(relative)
    job = _job(batch_size=8, general={"tasks": ["hellaswag", "ceval", "cmmlu"], "limit": 1})
    result = general.evaluate_model(job, model_dir, shared_data_dir(), tmp_path / "work", threads=1)
    tasks = result["tasks"]
    assert tasks["hellaswag"]["status"] == "ok" and tasks["hellaswag"]["metric"] == "acc_norm"
    assert tasks["hellaswag"]["n"] == 1
    assert tasks["ceval"]["n"] == len(general.CEVAL.subjects(shared_data_dir() / "eval" / "ceval"))
    assert tasks["cmmlu"]["n"] == len(general.CMMLU.subjects(shared_data_dir() / "eval" / "cmmlu"))
    assert all(0.0 <= task["score"] <= 1.0 for task in tasks.values())


def test_hellaswag_lines_are_grouped_and_checked():
    import datasets

    from abacus_repro.evaluate.lm_eval_docs import hellaswag_from_lines

    lines = ["Baking: A man [title] mixes flour. he", "1", "sings.", "kneads the dough.", "flies.", "swims."]
    docs = hellaswag_from_lines(datasets.Dataset.from_list([{"text": line} for line in lines]))
    assert docs[0] == {
        "query": "Baking: A man. mixes flour. he",
        "choices": ["sings.", "kneads the dough.", "flies.", "swims."],
        "gold": 1,
    }
    with pytest.raises(ValueError, match="multiple of 6"):
        hellaswag_from_lines(datasets.Dataset.from_list([{"text": line} for line in lines[:5]]))
