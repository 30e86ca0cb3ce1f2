"""Decontamination against the real evaluation files in shared/data: copies of benchmark items are found however
they are formatted, ordinary code and number tables are not, and every document is accounted for."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from abacus_repro.io import make_doc, write_docs
from abacus_repro.mixture import build_index, decontaminate_sources, scan_sources, words
from abacus_repro.mixture.decontaminate import REASON, informative
from abacus_repro.settings import DecontaminationSettings

SHARED = Path(os.environ.get("ABACUS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.fixture(scope="module")
def index():
    if not (SHARED / "code_eval").is_dir() or not (SHARED / "eval").is_dir():
        pytest.skip(f"shared evaluation data not found under {SHARED}")
    index, missing = build_index([SHARED / "code_eval", SHARED / "eval", SHARED / "nowhere"], 13)
    assert missing == [str(SHARED / "nowhere")]
    return index


def humaneval(task: str) -> dict:
    with gzip.open(SHARED / "code_eval" / "HumanEval.jsonl.gz", "rt") as handle:
        return next(record for record in map(json.loads, handle) if record["task_id"] == task)


def test_words_normalise_code_and_split_cjk():
    assert words("def f(x):\n    return  X+1  # Done") == ["def", "f", "x", "return", "x", "1", "done"]
    assert words("如何读取文件?use open()") == ["如", "何", "读", "取", "文", "件", "use", "open"]
    assert not informative([str(p) for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)])
    assert not informative(["0", "x"] * 6 + ["0"])
    assert informative(words("for i in range(len(numbers)): if numbers[i] > threshold: return True"))


def test_every_benchmark_file_present_is_indexed(index):
    coverage = index.coverage
    for name in (
        "code_eval/HumanEval.jsonl.gz",
        "code_eval/sanitized-mbpp.json",
        "eval/livecodebench/few_shot_generation_func.json",
        "eval/mmlu/test/machine_learning_test.csv",
        "eval/cmmlu/test/computer_science.csv",
        "eval/gsm8k/test_first300.jsonl",
        "eval/arc_easy/arc_easy_first300.jsonl",
    ):
        assert coverage[name]["items_indexed"] > 0, name
    assert coverage["code_eval/HumanEval.jsonl.gz"]["items"] == 164
    assert coverage["code_eval/sanitized-mbpp.json"]["items"] == 427
    # Items too short for a 13-word match (BIG-Bench arithmetic) are counted as unchecked, not silently ignored.
    assert coverage["eval/bbh/multistep_arithmetic_two.json"]["items_too_short"] == 250


def test_copies_are_found_and_clean_documents_kept(index):
    task = humaneval("HumanEval/0")
    # A reformatted copy: other indentation, no docstring quotes, extra comments around it.
    copied = "# utils.py\n" + (task["prompt"] + task["canonical_solution"]).replace("    ", "\t") + "\n# end\n"
    question = (SHARED / "eval" / "cmmlu" / "test" / "computer_science.csv").read_text().splitlines()[3]
    docs = {
        "code": [
            make_doc(copied, "code"),
            make_doc("def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n", "code"),
            make_doc("PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]\n", "code"),
        ],
        "text": [make_doc("题目:" + question.replace(",", " "), "text"), make_doc("An unrelated note.", "text")],
    }
    dropped, stats = scan_sources({name: [(d, d["text"]) for d in ds] for name, ds in docs.items()}, index, 1)
    assert [d["id"] for d in dropped] == [docs["code"][0]["id"], docs["text"][0]["id"]]
    assert dropped[0]["reason"] == REASON and "code_eval/" in dropped[0]["detail"]
    assert "HumanEval/0" in dropped[0]["detail"] and dropped[0]["detail"].startswith("code: ")
    assert "eval/cmmlu/test/computer_science.csv" in dropped[1]["detail"]
    assert stats["read"] == 5 and stats["kept"] == 3 and stats["dropped"] == {REASON: 2}
    for entry in stats["sources"].values():
        assert entry["read"] == entry["kept"] + sum(entry["dropped"].values())
    # Raising the bar above the copies' shared n-grams keeps them (the threshold is a setting).
    assert scan_sources({"code": [(docs["code"][0], copied)]}, index, 10_000)[0] == []


def test_sources_from_shards_and_disabled_or_missing_evaluation_data(index, tmp_path):
    task = humaneval("HumanEval/2")
    leak = make_doc("", "sft", {"instruction": task["prompt"], "response": task["canonical_solution"], "kind": "code"})
    clean = make_doc("", "sft", {"instruction": "Say hi.", "response": "print('hi')", "kind": "code"})
    write_docs(tmp_path / "sft.parquet", [leak, clean])
    roots = [SHARED / "code_eval"]
    settings = DecontaminationSettings(enabled=True, ngram=13, min_matches=1)
    dropped, stats = decontaminate_sources({"sft": [str(tmp_path / "sft.parquet")]}, roots, settings)
    assert [d["id"] for d in dropped] == [leak["id"]]  # SFT pairs are checked on instruction + response
    assert stats["by_benchmark"] and stats["missing_eval_roots"] == []
    off, off_stats = decontaminate_sources(
        {"sft": [str(tmp_path / "sft.parquet")]}, roots, DecontaminationSettings(enabled=False)
    )
    assert off == [] and off_stats["kept"] == 2 and off_stats["enabled"] is False
    none, none_stats = decontaminate_sources({"sft": [str(tmp_path / "sft.parquet")]}, [tmp_path / "no"], settings)
    assert none == [] and none_stats["missing_eval_roots"] == ["no"] and "note" in none_stats
