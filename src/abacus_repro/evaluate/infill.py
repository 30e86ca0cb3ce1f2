"""HumanEval infilling: the model fills in a span cut out of a canonical solution (fill-in-the-middle, FIM).

The benchmark of Bavarian et al. 2022 ("Efficient Training of Language Models to Fill in the Middle") as the
InCoder and SantaCoder papers ran it on HumanEval, built here from each problem's canonical solution:

- single-line: each non-blank line of the solution body is a middle;
- multi-line: each block of two or more consecutive lines, starting and ending on a non-blank line, is a middle.

On OpenAI's HumanEval with no caps that is 1,033 single-line spans, the count of the released single-line set
(openai/human-eval-infilling), and 4,782 multi-line spans, where the released multi-line set has 5,815 cut by
rules of its own: our multi-line numbers are comparable between our runs, not with published multi-line scores.

The prefix is the problem's prompt and the solution's lines before the middle, the suffix the lines after it, so
prefix + middle + suffix is exactly the problem's prompt + canonical solution. The model reads the PSM prompt
``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`` (the tokenizer's FIM tokens, ``model.tokenizer``) and
writes the middle, ending with its end-of-sequence token. A single-line middle is one line: the answer is cut
after its first line. The program prefix + answer + suffix is scored by the problem's tests, through the same
path as HumanEval itself (``humaneval.EvalplusBenchmark.run_tests``: OpenAI's check function in the project's
sandbox for plain HumanEval, evalplus's base tests for a HumanEval+ file); a span passes when those tests pass.
pass@1 (greedy) and the exact-match rate are reported per kind, with the number of spans.

Which spans are evaluated is decided by the run's seed: at most ``max_spans_per_problem`` of each kind per problem,
then at most ``max_spans`` of each kind in all, drawn without replacement and kept in solution order (None: all).
The problems are the first ``max_problems`` of HumanEval's data, found the way HumanEval's are (``datasource``).
A model whose tokenizer lacks the FIM tokens was not trained to infill: the benchmark is skipped, with that reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import PositiveInt

from ..model.tokenizer import FIM_MIDDLE, FIM_PAD, FIM_PREFIX, FIM_SUFFIX
from ..rules import RulePaths
from ..settings import (
    EvalplusLimits,
    EvalSettings,
    GenerationSettings,
    HumanEvalSettings,
    InfillSettings,
    Settings,
)
from . import datasource
from .benchmark import (
    Benchmark,
    EvalRuleJob,
    Prepared,
    Prompts,
    Scored,
    evaluate_with_model,
    run_model_rule,
    write_jsonl,
)
from .humaneval import EvalplusBenchmark, EvalplusPrepared, get_dataset

log = logging.getLogger(__name__)

BENCHMARK = "humaneval_infill"
SINGLE_LINE, MULTI_LINE = "single_line", "multi_line"
KINDS = (SINGLE_LINE, MULTI_LINE)
# The prompt style results record: PSM order, the FIM tokens, no chat template.
FIM_STYLE = "fim"
# The three tokens a PSM prompt is made of; a tokenizer must have each as one token.
PSM_TOKENS = (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)


@dataclass(frozen=True)
class Span:
    """One infilling task: lines [start, end) of a problem's canonical solution are the middle to write."""

    task_id: str
    kind: str  # SINGLE_LINE or MULTI_LINE
    start: int  # first line of the middle, 0-based, in the canonical solution
    end: int  # one past its last line
    prefix: str
    middle: str
    suffix: str


class InfillJob(Settings):
    """The settings of one infilling run: eval.infill, HumanEval's data settings (eval.humaneval: the same
    problems file), evalplus's limits, where else the data may come from, the batch size and the run's seed."""

    seed: int
    infill: InfillSettings
    humaneval: HumanEvalSettings
    evalplus: EvalplusLimits
    data_cache: str | None
    download: bool
    packages: bool
    batch_size: PositiveInt

    @classmethod
    def from_eval(cls, eval_settings: EvalSettings, seed: int) -> InfillJob:
        """The job out of the whole eval section and the run's seed (what the rule's settings give it)."""
        names = ("infill", "humaneval", "evalplus", "data_cache", "download", "packages", "batch_size")
        return cls.model_validate({"seed": seed, **{name: getattr(eval_settings, name) for name in names}})

    @property
    def sources(self) -> datasource.DataSources:
        return datasource.DataSources(self.data_cache, self.download, self.packages)

    @property
    def generation(self) -> GenerationSettings:
        # A FIM prompt is raw text, never a chat turn, so the prompt style is "base" whatever eval.prompt_style says.
        return GenerationSettings(
            prompt_style="base", max_new_tokens=self.infill.max_new_tokens, batch_size=self.batch_size
        )


class InfillRuleJob(InfillJob, EvalRuleJob):
    """Rule eval_infill's settings: the job's, its model and where HumanEval's data is."""


# ---------------------------------------------------------------- spans


def solution_lines(problem: dict) -> list[str]:
    return problem["canonical_solution"].splitlines(keepends=True)


def candidate_spans(problem: dict, kind: str) -> list[tuple[int, int]]:
    """Every (start, end) line range of ``kind`` in the problem's canonical solution, in solution order."""
    filled = [number for number, line in enumerate(solution_lines(problem)) if line.strip()]
    if kind == SINGLE_LINE:
        return [(number, number + 1) for number in filled]
    return [(first, last + 1) for index, first in enumerate(filled) for last in filled[index + 1 :]]


def make_span(problem: dict, kind: str, start: int, end: int) -> Span:
    lines = solution_lines(problem)
    return Span(
        task_id=problem["task_id"],
        kind=kind,
        start=start,
        end=end,
        prefix=problem["prompt"] + "".join(lines[:start]),
        middle="".join(lines[start:end]),
        suffix="".join(lines[end:]),
    )


def seeded_subset(items: Sequence, cap: int | None, key: str) -> list:
    """At most ``cap`` of ``items`` (all when None), drawn by ``key`` and kept in their order. A string key seeds
    Python's Random through sha512, so the draw is the same in every process and on every machine."""
    if cap is None or len(items) <= cap:
        return list(items)
    chosen = sorted(random.Random(key).sample(range(len(items)), cap))
    return [items[index] for index in chosen]


def cut_spans(problems: Sequence[dict], settings: InfillSettings, seed: int) -> list[Span]:
    """The spans to evaluate: single-line ones first, then multi-line, each in problem and solution order."""
    spans = []
    for kind in KINDS:
        per_problem = []
        for problem in problems:
            ranges = seeded_subset(
                candidate_spans(problem, kind), settings.max_spans_per_problem, f"{seed}/{problem['task_id']}/{kind}"
            )
            per_problem += [make_span(problem, kind, start, end) for start, end in ranges]
        spans += seeded_subset(per_problem, settings.max_spans, f"{seed}/{kind}")
    return spans


# ---------------------------------------------------------------- prompts and answers


def fim_prompt(span: Span) -> str:
    """The PSM prompt: prefix, suffix, then the marker after which the model writes the middle."""
    return f"{FIM_PREFIX}{span.prefix}{FIM_SUFFIX}{span.suffix}{FIM_MIDDLE}"


def missing_fim_tokens(tokenizer: Any) -> list[str]:
    """The PSM tokens the tokenizer does not encode as one token of their own (in its vocabulary)."""
    vocabulary = tokenizer.get_vocab()
    missing = []
    for token in PSM_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if token not in vocabulary or ids != [vocabulary[token]]:
            missing.append(token)
    return missing


def fitted_middle(span: Span, completion: str) -> str:
    """The model's answer as the middle of the program: one line for a single-line span, and ending in a newline,
    since the suffix starts a line of its own."""
    middle = completion
    if span.kind == SINGLE_LINE:
        middle = middle.split("\n", 1)[0]
    if middle and not middle.endswith("\n"):
        middle += "\n"
    return middle


def _normalised(text: str) -> str:
    """Text compared for exact match: trailing whitespace of each line and blank lines at either end dropped."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def exact_match(span: Span, middle: str) -> bool:
    return _normalised(middle) == _normalised(span.middle)


def rate(flags: Sequence[bool]) -> float | None:
    """The fraction of true flags; None for no flags (no span of that kind), which is no score."""
    return sum(flags) / len(flags) if flags else None


# ---------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class InfillPrepared(Prepared[Span]):
    problems: EvalplusPrepared | None = None  # HumanEval's problems and how their tests run
    by_id: dict[str, dict] = field(default_factory=dict)  # the problems by task id


class InfillBenchmark(Benchmark[Span]):
    """HumanEval infilling: spans of the canonical solutions, PSM prompts, scored by HumanEval's own tests."""

    name = BENCHMARK

    def __init__(self, settings: InfillJob, data_path: str | Path | None, work_dir: str | Path, parallel: int):
        self.settings = settings
        # HumanEval's own benchmark finds the data, records it, and runs the tests.
        self.tests = EvalplusBenchmark(
            get_dataset("humaneval"),
            data_path,
            settings.infill.max_problems,
            settings.evalplus,
            work_dir,
            parallel,
            settings.sources,
            base_only=True,  # a span is scored by the original (base) tests, as HumanEval's column is
        )

    def prepare(self) -> InfillPrepared:
        problems = self.tests.prepare()
        if problems.skip_reason:
            return InfillPrepared(skip_reason=problems.skip_reason)
        spans = cut_spans(problems.items, self.settings.infill, self.settings.seed)
        by_id = {problem["task_id"]: problem for problem in problems.items}
        return InfillPrepared(spans, problems.record, problems=problems, by_id=by_id)

    def prompts(self, prepared: InfillPrepared, tokenizer: Any, style: str) -> Prompts | str:
        missing = missing_fim_tokens(tokenizer)
        if missing:
            return f"the tokenizer has no {', '.join(missing)} token: the model was not trained to fill in the middle"
        # The answer ends at the end-of-sequence token; a FIM marker in the text would also end it.
        stops = [token for token in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FIM_PAD, tokenizer.eos_token) if token]
        texts = [fim_prompt(span) for span in prepared.items]
        return Prompts(texts, FIM_STYLE, True, stops, self.settings.infill.max_new_tokens)

    def score(self, prepared: InfillPrepared, prompts: Prompts, completions: list[str]) -> Scored:
        spans = prepared.items
        middles = [fitted_middle(span, completion) for span, completion in zip(spans, completions)]
        samples = [{"task_id": s.task_id, "solution": s.prefix + m + s.suffix} for s, m in zip(spans, middles)]
        passed, regraded = self._run_tests(prepared, samples)
        exact = [exact_match(span, middle) for span, middle in zip(spans, middles)]
        rows = [
            {
                "task_id": span.task_id,
                "kind": span.kind,
                "lines": [span.start, span.end],
                "middle": span.middle,
                "completion": completion,
                "solution": sample["solution"],
                "passed": ok,
                "exact_match": same,
            }
            for span, completion, sample, ok, same in zip(spans, completions, samples, passed, exact)
        ]
        return Scored(self._result(prepared, passed, exact, regraded), rows)

    def _run_tests(self, prepared: InfillPrepared, samples: list[dict]) -> tuple[list[bool], dict[str, str]]:
        """Whether each sample passes its problem's tests (base tests: HumanEval's original ones), in order."""
        task_ids = list(dict.fromkeys(sample["task_id"] for sample in samples))
        problems = [prepared.by_id[task_id] for task_id in task_ids]
        if not samples:
            return [], {}
        # evalplus wants samples for every problem of its file: a file of just the problems that have spans.
        problems_file = self.tests.work_dir / "infill-problems.jsonl"
        write_jsonl(problems_file, problems)
        results, regraded = self.tests.run_tests(
            prepared.problems, problems, problems_file, samples, self.settings.evalplus
        )
        # Both scorers list each task's runs in the order of its samples.
        runs = {task_id: iter(results["eval"][task_id]) for task_id in task_ids}
        return [next(runs[sample["task_id"]])["base_status"] == "pass" for sample in samples], regraded

    def _result(
        self, prepared: InfillPrepared, passed: list[bool], exact: list[bool], regraded: dict[str, str]
    ) -> dict:
        spans = prepared.items
        by_kind = {kind: [index for index, span in enumerate(spans) if span.kind == kind] for kind in KINDS}
        scores = {kind: rate([passed[i] for i in indices]) for kind, indices in by_kind.items()}
        log.info("%s pass@1: %s (spans %s)", self.name, scores, {k: len(v) for k, v in by_kind.items()})
        return {
            "benchmark": self.name,
            "status": "ok",
            "pass@1": scores,
            "exact_match": {kind: rate([exact[i] for i in indices]) for kind, indices in by_kind.items()},
            "n_spans": {kind: len(indices) for kind, indices in by_kind.items()},
            "n": len(spans),
            "n_problems": len({span.task_id for span in spans}),
            "seed": self.settings.seed,
            "spans": self.settings.infill.model_dump(),
            "dataset": prepared.record,
            "scored_by": "check function in the sandbox" if prepared.problems.check_tests else "evalplus base tests",
            "limits": self.settings.evalplus.model_dump(),
            "regraded": regraded,
        }


def evaluate_infill(
    settings: InfillJob,
    model_ref: str | Path,
    data_path: str | Path | None,
    work_dir: str | Path,
    samples_path: str | Path | None = None,
    threads: int | None = None,
    parallel: int = 2,
) -> dict:
    """HumanEval infilling for one model. ``data_path``: HumanEval's configured file (None: the package's, the
    cached or downloaded release, see ``datasource``); ``parallel``: test processes at once."""
    benchmark = InfillBenchmark(settings, data_path, work_dir, parallel)
    return evaluate_with_model(benchmark, model_ref, settings.generation, threads, samples_path)


def run_eval_infill(settings: InfillRuleJob, paths: RulePaths) -> None:
    """Rule eval_infill: one model fills in spans of HumanEval's canonical solutions; HumanEval's tests score them."""
    run_model_rule(evaluate_infill, settings, paths)
