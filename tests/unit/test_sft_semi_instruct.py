"""Semi-Instruct: template rewriting, test inputs, and the sandboxed original-vs-rewritten check."""

from __future__ import annotations

import json
import random

import pytest

from abacus_repro.io import make_doc
from abacus_repro.settings import SftSettings
from abacus_repro.sft.collect import collect_natural
from abacus_repro.sft.inputs import annotation_kind, generate_calls, parse_call
from abacus_repro.sft.semi_instruct import (
    LLMRewriter,
    RewriteError,
    SemiInstructJob,
    TemplateRewriter,
    first_paragraph,
    semi_instruct,
    template_instruction,
)

from .sft_fixtures import write_code_shard

SFT = SftSettings(max_tests_per_function=4, sandbox={"timeout_s": 5, "memory_mb": 512})


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    shard = write_code_shard(tmp_path_factory.mktemp("code") / "kept.parquet")
    docs, _ = collect_natural([shard], None, 0)
    return docs


def _by_function(docs):
    return {json.loads(d["meta"])["function"]: d for d in docs}


def _sample(doc):
    sample = json.loads(doc["meta"])
    sample.update(code=doc["text"], id=doc["id"])
    return sample


class BrokenRewriter(TemplateRewriter):
    """Rewrites `clamp` wrongly (off by one inside the range); everything else like the template rewriter."""

    name = "broken-for-test"

    def rewrite(self, sample):
        instruction, code = super().rewrite(sample)
        if sample["function"] == "clamp":
            code = code.replace("return value", "return value + 1")
        return instruction, code


def test_instruction_from_docstring_and_signature(natural):
    sample = _sample(_by_function(natural)["slugify"])
    instruction = template_instruction(sample)
    assert instruction.startswith(
        "Write a Python function `slugify(text, sep=SEPARATOR)` that returns a lower-case slug of the words in text"
    )
    assert "`slugify(\"Hello World\")` returns `'hello-world'`" in instruction
    clamp = template_instruction(_sample(_by_function(natural)["clamp"]))
    assert (
        clamp == "Write a Python function `clamp(value, low=0, high=10)` that clamps value into the range [low, high]."
    )
    assert first_paragraph("Use :func:`foo` and ``bar``\n  here.\n\nMore.") == "Use `foo` and `bar` here."


def test_rewritten_code_is_normalised_but_keeps_the_docstring(natural):
    _, code = TemplateRewriter().rewrite(_sample(_by_function(natural)["slugify"]))
    assert "# words only" not in code
    assert '"""Return a lower-case slug' in code
    assert "def _clean(word):" in code


def test_inputs_start_with_doctests_and_are_seeded(natural):
    sample = _sample(_by_function(natural)["slugify"])
    calls = generate_calls(sample, 6, random.Random(3))
    assert calls[:2] == [(["Hello World"], {}), (["  A  b "], {"sep": "_"})]
    assert len(calls) == 6
    assert all(isinstance(args[0], str) for args, _ in calls)  # annotated str
    assert calls == generate_calls(sample, 6, random.Random(3))
    assert calls != generate_calls(sample, 6, random.Random(4))


def test_type_driven_inputs():
    assert annotation_kind("int") == "int"
    assert annotation_kind("Optional[List[str]]") == ("union", [("list", "str"), "none_or"])
    assert annotation_kind("dict[str, float]") == ("dict", "str", "float")
    sample = {
        "function": "f",
        "params": [
            {"name": "count", "kind": "positional", "annotation": None, "default": None},
            {"name": "mode", "kind": "positional", "annotation": None, "default": "'fast'"},
            {"name": "flag", "kind": "keyword_only", "annotation": "bool", "default": None},
        ],
        "literals": {"mode": ["slow", "fast"]},
    }
    calls = generate_calls(sample, 12, random.Random(0))
    assert all(isinstance(args[0], int) and isinstance(kwargs["flag"], bool) for args, kwargs in calls)
    assert any(len(args) == 2 and args[1] == "slow" for args, _ in calls)  # a literal the body compares with
    assert parse_call("f(1, [2, 3], k='x')", "f") == ([1, [2, 3]], {"k": "x"})
    assert parse_call("f(some_name)", "f") is None


def test_keeps_matching_rewrites_and_drops_a_broken_one(natural):
    kept, dropped, stats = semi_instruct(natural, SemiInstructJob.of(SFT, 1), rewriter=BrokenRewriter(), workers=1)
    kept_functions = [json.loads(d["meta"])["function"] for d in kept]
    reasons = {json.loads(d["meta"])["function"]: d["reason"] for d in dropped}
    assert sorted(kept_functions) == ["slugify", "total"]
    assert reasons == {"clamp": "mismatch", "always_fails": "no_valid_tests"}
    assert "expected" in next(d["detail"] for d in dropped if d["reason"] == "mismatch")
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) == len(natural)
    assert stats["dropped"] == {"mismatch": 1, "no_valid_tests": 1}

    for doc in kept:
        meta = json.loads(doc["meta"])
        assert doc["text"] == f"<用户>{meta['instruction']}<AI>{meta['response']}"
        assert meta["response"].startswith("```python\n") and meta["kind"] == "code"
        assert 1 <= meta["tests_passed"] == len(meta["tests"]) <= SFT.max_tests_per_function
        assert meta["origin"].startswith("toyrepo/toy/utils.py:")
        assert meta["isolation"] in ("bwrap", "unshare", "rlimits")
    slug = next(json.loads(d["meta"]) for d in kept if "slugify" in d["text"])
    assert {"call": "slugify('Hello World')", "expected": "'hello-world'"} in slug["tests"]
    # Curriculum: ascending number of tests passed.
    passed = [json.loads(d["meta"])["tests_passed"] for d in kept]
    assert passed == sorted(passed)


def test_same_inputs_same_outputs_whatever_the_worker_count(natural):
    one = semi_instruct(natural, SemiInstructJob.of(SFT, 5), workers=1)
    two = semi_instruct(natural, SemiInstructJob.of(SFT, 5), workers=2)
    assert one[0] == two[0] and one[1] == two[1] and one[2] == two[2]
    assert one[2]["kept"] == 3  # the template rewriter keeps clamp too


def test_timeouts_and_crashes_are_reasons():
    sample_meta = {"params": [{"name": "n", "kind": "positional", "annotation": "int", "default": None}],
                   "docstring": "Loop.", "doctests": [], "literals": {}, "origin": "t/t.py:f"}  # fmt: skip
    looping = make_doc("def f(n):\n    while True:\n        pass\n", "natural_instruct", {**sample_meta, "function": "f",
                       "call_signature": "f(n)", "signature": "f(n)"}, id="loop")  # fmt: skip
    exiting = make_doc("import os\nos._exit(3)\ndef g(n):\n    return n\n", "natural_instruct",
                       {**sample_meta, "function": "g", "call_signature": "g(n)", "signature": "g(n)"}, id="exit")  # fmt: skip
    sft = SftSettings(max_tests_per_function=2, sandbox={"timeout_s": 2, "memory_mb": 256})
    kept, dropped, _ = semi_instruct([looping, exiting], SemiInstructJob.of(sft, 0), workers=1)
    assert kept == []
    reasons = {d["id"]: d["reason"] for d in dropped}
    # Each call of the loop hits its own timer (so no input is valid); the exiting module kills the process.
    assert reasons == {"loop": "no_valid_tests", "exit": "sandbox_error"}
    assert next(d["detail"] for d in dropped if d["id"] == "loop").endswith("inputs: too slow")


class FakeClient:
    name = "fake"

    def complete(self, prompts):
        replies = []
        for prompt in prompts:
            if prompt.startswith("Propose"):
                replies.append("(3, 1, 2)\n(99,)\nnot a tuple\n(-5,)")
            else:
                replies.append(
                    "Instruction: Clamp a number.\n```python\ndef clamp(value, low=0, high=10):\n"
                    "    return max(low, min(high, value))\n```"
                )
        return replies


def test_llm_rewriter_through_a_client(natural):
    rewriter = LLMRewriter(FakeClient())
    sample = _sample(_by_function(natural)["clamp"])
    instruction, code = rewriter.rewrite(sample)
    assert instruction == "Clamp a number." and "max(low, min(high, value))" in code
    calls = rewriter.generate_inputs(sample, 3, random.Random(0))
    assert calls == [([3, 1, 2], {}), ([99], {}), ([-5], {})]
    bad = LLMRewriter._parse_rewrite("no code here", sample)
    assert isinstance(bad, RewriteError)
    kept, _, stats = semi_instruct(
        [_by_function(natural)["clamp"]], SemiInstructJob.of(SFT, 0), rewriter=rewriter, workers=1
    )
    assert stats["kept"] == 1 and json.loads(kept[0]["meta"])["rewriter"] == "llm:fake"
