"""BBH and GSM8K task definitions through the real lm-eval, scored with an oracle model; original data layouts."""

from __future__ import annotations

import csv
import json

import pytest

from abacus_repro.evaluate import general
from abacus_repro.evaluate.lm_eval_docs import arc_docs, hellaswag_docs, mmlu_docs

from .evaluate_fixtures import shared_data_dir, shared_file


class OracleLM:
    """An lm-eval model that answers generation requests from a table: lm-eval builds the prompts, filters the
    answers and computes the metrics exactly as for a real model. Records every prompt it was given."""

    def __new__(cls, answer_for):
        from lm_eval.api.model import LM

        class _Oracle(LM):
            def __init__(self):
                super().__init__()
                self.prompts = []

            def generate_until(self, requests, disable_tqdm=False):
                outputs = []
                for request in requests:
                    context, _kwargs = request.args
                    self.prompts.append(context)
                    outputs.append(answer_for(context))
                return outputs

            def loglikelihood(self, requests, disable_tqdm=False):
                raise NotImplementedError

            def loglikelihood_rolling(self, requests, disable_tqdm=False):
                raise NotImplementedError

        return _Oracle()


def _run(task_name: str, lm, tmp_path, limit: int, **render):
    from lm_eval.tasks import TaskManager

    rendered = general.render_tasks([task_name], shared_data_dir(), tmp_path / "tasks", **render)[task_name]
    assert isinstance(rendered, general.RenderedTask), rendered
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    return general.evaluate_task(lm, rendered, manager, limit)


def _bbh_targets() -> dict[str, str]:
    targets = {}
    for path in sorted((shared_data_dir() / "eval" / "bbh").glob("*.json")):
        for example in json.loads(path.read_text())["examples"]:
            targets[example["input"]] = example["target"]
    return targets


def _last_question(context: str, opener: str, closer: str) -> str:
    return context[context.rindex(opener) + len(opener) : context.rindex(closer)]


def test_bbh_three_shot_cot_exact_match(tmp_path):
    shared_file("eval/bbh/cot-prompts/object_counting.txt")
    targets = _bbh_targets()

    def right(context):
        question = _last_question(context, "Q: ", "\nA: Let's think step by step.\n")
        return f"Counting carefully gives the result. So the answer is {targets[question]}."

    oracle = OracleLM(right)
    result = _run("bbh", oracle, tmp_path, limit=3, max_gen_toks=32)
    subjects = sorted(p.stem for p in (shared_data_dir() / "eval/bbh/cot-prompts").glob("*.txt"))
    assert result["score"] == 1.0 and result["metric"] == "exact_match,get-answer"
    assert result["n"] == 3 * len(subjects) and result["num_fewshot"] == 3
    assert set(result["subtasks"]) == {f"abacus_bbh_{s}" for s in subjects}
    prompt = next(p for p in oracle.prompts if "How many" in p)
    # The official description, three worked exemplars, then the question.
    assert prompt.startswith("Questions that involve enumerating objects and asking the model to count them.\n\n")
    assert prompt.count("Q: ") == 4 and prompt.count("So the answer is") == 3
    assert "canary" not in prompt

    wrong = OracleLM(lambda context: "I am not sure. So the answer is nothing.")
    assert _run("bbh", wrong, tmp_path / "wrong", limit=3, max_gen_toks=32)["score"] == 0.0


def test_gsm8k_five_shot_strict_and_flexible(tmp_path):
    test_file = shared_file("eval/gsm8k/test_first300.jsonl")
    answers = {}
    for line in test_file.read_text().splitlines():
        row = json.loads(line)
        answers[row["question"]] = row["answer"]

    oracle = OracleLM(lambda context: " " + answers[_last_question(context, "Question: ", "\nAnswer:")])
    result = _run("gsm8k", oracle, tmp_path, limit=4)
    assert result["n"] == 4 and result["num_fewshot"] == 5
    assert result["metric"] == "exact_match,strict-match" and result["score"] == 1.0
    assert result["metrics"]["exact_match,flexible-extract"] == 1.0
    prompt = oracle.prompts[0]
    assert prompt.count("Question: ") == 6 and prompt.count("#### ") == 5  # five solved exemplars

    # The number without "#### ": strict-match misses it, flexible-extract (the last number) finds it.
    def loose(context):
        reference = answers[_last_question(context, "Question: ", "\nAnswer:")]
        return " So the result is " + reference.split("#### ")[-1].strip() + "."

    loose_result = _run("gsm8k", OracleLM(loose), tmp_path / "loose", limit=4)
    assert loose_result["score"] == 0.0
    assert loose_result["metrics"]["exact_match,flexible-extract"] == 1.0


def test_bbh_prompt_file_is_parsed_like_the_official_one():
    text = shared_file("eval/bbh/cot-prompts/date_understanding.txt").read_text()
    description, exemplars = general.parse_bbh_prompt(text)
    assert description == "Infer the date from context."
    assert len(exemplars) == 3
    assert all(e["target"].endswith(".") and "So the answer is" in e["target"] for e in exemplars)
    assert exemplars[0]["input"].startswith("Today is Christmas Eve of 1937")
    with pytest.raises(ValueError, match="exemplar"):
        general.parse_bbh_prompt("-----\nA task.\n\nQ: no answer here")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_arc_in_ai2_layout_reads_like_the_shared_rendering(tmp_path):
    import datasets

    rendered = _rows(shared_file("eval/arc_easy/arc_easy_first300.jsonl"))[:20]
    labels = "ABCDE"
    original = [
        {
            "id": f"item-{i}",
            "question": {
                "stem": row["query"].removeprefix("Question: "),
                "choices": [{"text": text, "label": labels[j]} for j, text in enumerate(row["choices"])],
            },
            "answerKey": labels[row["gold"]],
        }
        for i, row in enumerate(rendered)
    ]
    path = tmp_path / "ARC-Easy-Test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in original))
    from_original = arc_docs(datasets.load_dataset("json", data_files=str(path), split="train"))
    assert list(from_original) == list(arc_docs(datasets.Dataset.from_list(rendered)))


def test_hellaswag_in_rowanz_layout():
    import datasets

    row = {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.",
        "ctx_b": "he",
        "endings": ["is using wrap to wrap a pair of skis.", "starts pulling up roofing on a roof [title] x."],
        "label": 1,
    }
    doc = hellaswag_docs(datasets.Dataset.from_list([row]))[0]
    assert doc == {
        "query": "Roof shingle removal: A man is sitting on a roof. He",
        "choices": ["is using wrap to wrap a pair of skis.", "starts pulling up roofing on a roof. x."],
        "gold": 1,
    }


def test_mmlu_in_hendrycks_layout_gives_the_same_prompts(tmp_path):
    import datasets
    from lm_eval.tasks import TaskManager

    source = shared_data_dir() / "eval" / "mmlu"
    shared_file("eval/mmlu/test/machine_learning_test.csv")
    original = tmp_path / "mmlu"
    for split in ("test", "dev"):
        (original / split).mkdir(parents=True)
        for path in sorted((source / split).glob("*.csv")):
            with open(path, encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
            with open(original / split / path.name, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)  # no header, answer as a letter
                for row in rows:
                    choices = [row[f"choice{i}"] for i in range(4)]
                    writer.writerow([row["question"], *choices, "ABCD"[int(row["answer"])]])

    def prompts(folder, out):
        general.render_tasks(["mmlu"], tmp_path, out, data={"mmlu": str(folder)})
        manager = TaskManager(include_path=str(out), include_defaults=False)
        task = manager.load(["abacus_mmlu_machine_learning"])["tasks"]["abacus_mmlu_machine_learning"]
        docs = list(task.test_docs())
        return [(task.doc_to_text(doc), task.doc_to_target(doc)) for doc in docs], len(list(task.fewshot_docs()))

    header_prompts, header_shots = prompts(source, tmp_path / "header")
    original_prompts, original_shots = prompts(original, tmp_path / "original")
    assert original_prompts == header_prompts and original_shots == header_shots == 5
    assert len(header_prompts) == 112
    row = {"question": "q", "A": "a", "B": "b", "C": "0.50", "D": "d", "answer": "C"}
    docs = mmlu_docs(datasets.Dataset.from_list([row]))
    assert docs[0] == {"question": "q", "choices": ["a", "b", "0.50", "d"], "answer": 2}
