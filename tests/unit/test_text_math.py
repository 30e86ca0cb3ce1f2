"""Generated GSM8K-style math: answers re-computed independently, arithmetic notes checked, determinism."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from pydantic import ValidationError

from abacus_repro.ingest.math import TEMPLATES, evaluate_expression, ingest_math, verify_solution
from abacus_repro.settings import MathSettings


@pytest.fixture(scope="module")
def problems():
    docs, stats = ingest_math(MathSettings(source="generated", n_problems=400), seed=1234)
    return docs, stats, [json.loads(d["meta"]) for d in docs]


def test_400_distinct_verified_problems(problems):
    docs, stats, metas = problems
    assert len(docs) == stats["kept"] == 400 and len({d["id"] for d in docs}) == 400
    assert len({m["question"] for m in metas}) == 400
    assert set(stats["templates"]) == set(TEMPLATES) and min(stats["templates"].values()) > 5
    for doc, meta in zip(docs, metas, strict=True):
        assert verify_solution(meta["solution"]) == meta["answer"]
        assert doc["text"] == f"Question: {meta['question']}\nAnswer: {meta['solution']}"
        assert doc["text"].endswith(f"#### {meta['answer']}")


def _numbers(text):
    return [int(n) for n in re.findall(r"\d+", text)]


def test_answers_recomputed_from_the_question_text(problems):
    """Independent of the generator: read the numbers back from the question and solve it again."""
    _, _, metas = problems
    checked = 0
    for meta in metas:
        q = meta["question"]
        if meta["template"] == "shopping":
            n1, p1, n2, p2, bill = _numbers(q)
            assert meta["answer"] == bill - (n1 * p1 + n2 * p2)
        elif meta["template"] == "travel":
            v1, h1, v2, h2 = _numbers(q)
            assert meta["answer"] == v1 * h1 + v2 * h2
        elif meta["template"] == "fence":
            length, width, cost = _numbers(q)
            assert meta["answer"] == 2 * (length + width) * cost
        elif meta["template"] == "wages":
            rate, base, worked = _numbers(q)
            assert meta["answer"] == rate * base + rate * 3 // 2 * (worked - base)
        else:
            continue
        checked += 1
    assert checked > 50


def test_generation_is_seeded():
    first, _ = ingest_math(MathSettings(n_problems=30), seed=5)
    assert first == ingest_math(MathSettings(n_problems=30), seed=5)[0]
    assert first != ingest_math(MathSettings(n_problems=30), seed=6)[0]


@pytest.mark.parametrize(
    "solution",
    [
        "2 + 2 = <<2+2=5>>5\n#### 5",
        "no notes\n#### 4",
        "<<2*3=6>>6\n#### 7",
        "<<2*3=6>>6",
        "<<__import__('os')=1>>1\n#### 1",
    ],
)
def test_verify_solution_refuses_wrong_or_unsafe_solutions(solution):
    with pytest.raises(ValueError):
        verify_solution(solution)


def test_evaluator_is_exact():
    assert evaluate_expression("10*3/2") == 15 and evaluate_expression("1/3") == Fraction(1, 3)


def test_gsm8k_jsonl_source(shared_data):
    path = shared_data / "eval" / "gsm8k" / "train_first20.jsonl"
    docs, stats = ingest_math(MathSettings(source="jsonl", path=str(path), n_problems=400), seed=0)
    assert stats["read"] == 20 == stats["kept"] + sum(stats["dropped"].values())
    assert all("#### " in d["text"] for d in docs)


def test_unknown_source_or_a_source_without_its_input_is_refused():
    with pytest.raises(ValidationError, match="source"):
        MathSettings(source="wikipedia")
    with pytest.raises(ValidationError, match="math.source jsonl needs math.path"):
        MathSettings(source="jsonl")
