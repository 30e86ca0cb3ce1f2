"""LiveCodeBench code generation: problems from the official release files, tests run in our sandbox, pass@1.

Data: ``livecodebench/code_generation_lite``'s release files (``test.jsonl`` ... ``test6.jsonl``, one problem per
line), read as they are. Fields (LiveCodeBench's ``lcb_runner/benchmarks/code_generation.py``):
``question_title``, ``question_content``, ``platform`` (leetcode/atcoder/codeforces), ``question_id``,
``contest_id``, ``contest_date`` (ISO date-time), ``starter_code`` (LeetCode's class stub, or empty),
``difficulty`` (easy/medium/hard), ``public_test_cases`` (a JSON list of ``{input, output, testtype}``),
``private_test_cases`` (the same, either plain JSON or base64 of zlib of a pickled JSON string) and
``metadata`` (a JSON object; ``func_name`` names the method functional tests call).

Problems are kept when their contest date lies in the configured window (calendar dates, both ends included;
the recipe evaluates 2024-01 to 2024-09). Tests are ``functional`` (call a method with JSON arguments) or
``stdin`` (run the program on an input, compare its output); see ``_lcb_check`` for the grading rules, which
follow LiveCodeBench's own. One greedy sample per problem; pass@1 is the share of problems whose sample passes
every public and private test.

Prompts follow LiveCodeBench: for base models its few-shot base prompt (one official exemplar, ``func`` for
problems with starter code, ``stdin`` otherwise; generation stops at ``###``; the whole completion is the
program); for chat models its generic question template after its system message in the user turn (the
``OpenAIReasonPreview`` style, which needs no system role), and the code is the last fenced block.

``LiveCodeBenchBenchmark`` fills in the benchmark contract (``benchmark``); ``score_solutions`` grades given
programs through the same preparation and grading.

Speed: each sample's tests run in ONE sandbox process (the sandbox's batch API), samples are graded in a pool
of worker threads (each waits on its own sandbox process) while the model generates the next batch.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import read_jsonl, sha256_file, write_json
from ..rules import RulePaths
from ..settings import EvalSettings, GenerationSettings, LiveCodeBenchSettings
from .benchmark import Benchmark, EvalRuleJob, Prepared, Prompts, Scored, evaluate_with_model

log = logging.getLogger(__name__)

BENCHMARK = "livecodebench"
OFFICIAL_FIELDS = (
    "question_title",
    "question_content",
    "platform",
    "question_id",
    "contest_id",
    "contest_date",
    "starter_code",
    "difficulty",
    "public_test_cases",
    "private_test_cases",
    "metadata",
)
DIFFICULTIES = ("easy", "medium", "hard")
TEST_TYPES = ("functional", "stdin")

# LiveCodeBench's prompt texts (lcb_runner/prompts/code_generation.py, PromptConstants).
SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will generate "
    "a correct Python program that matches the specification and passes all tests."
)
FORMAT_WITH_STARTER_CODE = (
    "You will use the following starter code to write the solution to the problem and enclose your code within "
    "delimiters."
)
FORMAT_WITHOUT_STARTER_CODE = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
    "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it "
    "reads the inputs, runs the algorithm and writes output to STDOUT."
)
BASE_STOP = "###"
# The modules LiveCodeBench's test harness imports before every program (testing_util.import_string): programs
# may use their names without importing them. First every ``from M import *``, then every ``import M``.
PRELUDE_STAR_IMPORTS = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)  # fmt: skip
PRELUDE_MODULE_IMPORTS = PRELUDE_STAR_IMPORTS[:-2]  # all but builtins and typing
PRELUDE = (
    "".join(f"from {module} import *\n" for module in PRELUDE_STAR_IMPORTS)
    + "".join(f"import {module}\n" for module in PRELUDE_MODULE_IMPORTS)
    + "sys.setrecursionlimit(50000)\n"
)
CHECK_FUNCTION = "_abacus_lcb_check"
_CHECK_SOURCE = Path(__file__).with_name("_lcb_check.py")
# Exemplar files: the names in LiveCodeBench's repository, then the names the shared data uses.
EXEMPLAR_FILES = {
    "func": ("func.json", "few_shot_generation_func.json"),
    "stdin": ("stdin.json", "few_shot_generation_stdin.json"),
}


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Test:
    input: str
    output: str
    testtype: str


@dataclass
class Problem:
    question_id: str
    question_title: str
    question_content: str
    platform: str
    contest_id: str
    contest_date: datetime
    starter_code: str
    difficulty: str
    public_tests: list[Test]
    private_tests: list[Test]
    metadata: dict = field(default_factory=dict)

    @property
    def func_name(self) -> str | None:
        return self.metadata.get("func_name") or None

    @property
    def kind(self) -> str:
        """``functional`` when the tests call a named method (LiveCodeBench's ``fn_name``), else ``stdin``."""
        return "functional" if self.func_name else "stdin"

    @property
    def tests(self) -> list[Test]:
        return self.public_tests + self.private_tests


class _TextOnlyUnpickler(pickle.Unpickler):
    """The private tests are a pickled ``str``: anything that needs a class (and could run code) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from test data")


def decode_test_cases(text: str) -> list[dict]:
    """Test cases from plain JSON or from LiveCodeBench's compressed form (base64 -> zlib -> pickle -> JSON)."""
    try:
        cases = json.loads(text)
    except json.JSONDecodeError:
        try:
            raw = zlib.decompress(base64.b64decode(text.encode("utf-8"), validate=True))
            unpickled = _TextOnlyUnpickler(io.BytesIO(raw)).load()
        except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as err:
            raise ValueError(f"neither JSON nor base64/zlib/pickle ({type(err).__name__}: {err})") from err
        if not isinstance(unpickled, (str, bytes)):
            raise TypeError(f"the pickled value is a {type(unpickled).__name__}, not JSON text")
        cases = json.loads(unpickled)
    if not isinstance(cases, list):
        raise TypeError("test cases are not a JSON list")
    return cases


def _tests(cases: list[dict], where: str) -> list[Test]:
    tests = []
    for number, case in enumerate(cases, 1):
        if not isinstance(case, dict) or not {"input", "output", "testtype"} <= case.keys():
            raise ValueError(f"{where} test {number} lacks input/output/testtype")
        if case["testtype"] not in TEST_TYPES:
            raise ValueError(f"{where} test {number} has testtype {case['testtype']!r}, not one of {TEST_TYPES}")
        tests.append(Test(str(case["input"]), str(case["output"]), case["testtype"]))
    return tests


def parse_problem(row: dict) -> Problem:
    """One problem from one line of a release file; ValueError says what is wrong with it."""
    missing = [name for name in OFFICIAL_FIELDS if name not in row]
    if missing:
        raise ValueError(f"lacks LiveCodeBench fields {missing}")
    metadata = row["metadata"]
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not a JSON object")
    public = row["public_test_cases"]
    private = row["private_test_cases"]
    problem = Problem(
        question_id=str(row["question_id"]),
        question_title=str(row["question_title"]),
        question_content=str(row["question_content"]),
        platform=str(row["platform"]),
        contest_id=str(row["contest_id"]),
        contest_date=datetime.fromisoformat(str(row["contest_date"])),
        starter_code=str(row["starter_code"] or ""),
        difficulty=str(row["difficulty"]),
        public_tests=_tests(public if isinstance(public, list) else json.loads(public), "public"),
        private_tests=_tests(private if isinstance(private, list) else decode_test_cases(private), "private"),
        metadata=metadata,
    )
    if not problem.tests:
        raise ValueError("has no tests")
    kinds = {test.testtype for test in problem.tests}
    if kinds != {problem.kind}:
        raise ValueError(f"its tests are {sorted(kinds)} but metadata makes it a {problem.kind} problem")
    return problem


def load_problems(paths: Sequence[str | Path]) -> list[Problem]:
    """Problems of all release files, in file order; a question id seen twice is an error."""
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        rows = read_jsonl(path)
        if not rows:
            raise InputError(path, "no problems in the file")
        for number, row in enumerate(rows, 1):
            try:
                problem = parse_problem(row)
            except (ValueError, TypeError, KeyError) as err:
                raise InputError(path, f"problem on line {number}: {err}") from err
            if problem.question_id in seen:
                raise InputError(path, f"question_id {problem.question_id} also appears in {seen[problem.question_id]}")
            seen[problem.question_id] = path
            problems.append(problem)
    return problems


def parse_day(text: str, setting: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError as err:
        raise InputError(setting, f"{text!r} is not a YYYY-MM-DD date") from err


def in_window(problems: Sequence[Problem], start: str, end: str) -> list[Problem]:
    """Problems whose contest date (the calendar day) lies in [start, end]."""
    first = parse_day(start, "eval.livecodebench.start_date")
    last = parse_day(end, "eval.livecodebench.end_date")
    if last < first:
        raise InputError("eval.livecodebench", f"end_date {end} is before start_date {start}")
    return [problem for problem in problems if first <= problem.contest_date.date() <= last]


def files_record(paths: Sequence[Path]) -> dict:
    """Paths and sha256 of the release files, and one digest over them (see ``summary.combined_sha256``)."""
    from .summary import combined_sha256

    files = [{"path": str(path), "sha256": sha256_file(path)} for path in paths]
    return {"files": files, "sha256": combined_sha256(files)}


# ---------------------------------------------------------------- prompts and code


def load_exemplars(directory: str | Path | None) -> dict[str, list[dict]] | None:
    """LiveCodeBench's few-shot exemplars (``func`` and ``stdin``) from a directory, or None when absent."""
    if not directory:
        return None
    directory = Path(directory)
    exemplars = {}
    for kind, names in EXEMPLAR_FILES.items():
        found = next((directory / name for name in names if (directory / name).is_file()), None)
        if found is None:
            return None
        try:
            rows = json.loads(found.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(found, f"not a JSON list of exemplars ({err})") from err
        if not isinstance(rows, list) or not rows or not all({"question", "answer"} <= set(r) for r in rows):
            raise InputError(found, "expected a JSON list of {question, answer, ...} exemplars")
        exemplars[kind] = rows
    return exemplars


def _exemplar_block(question: str, sample_code: str, answer: str, with_starter: bool) -> str:
    text = f"### Question\n{question}\n\n"
    if with_starter:
        text += f"### Starter Code\n{sample_code}\n\n"
    text += "### Answer\n\n" + answer
    return text + "\n\n" if answer else text


def base_prompt(problem: Problem, exemplars: dict[str, list[dict]]) -> str:
    """LiveCodeBench's base-model prompt: its first exemplar of the problem's kind, then the problem."""
    with_starter = bool(problem.starter_code)
    example = exemplars["func" if with_starter else "stdin"][0]
    return _exemplar_block(
        example["question"], example.get("sample_code", ""), example["answer"], with_starter
    ) + _exemplar_block(problem.question_content, problem.starter_code, "", with_starter)


def question_text(problem: Problem) -> str:
    """LiveCodeBench's generic question template (the user turn of its chat prompts)."""
    text = f"### Question:\n{problem.question_content}\n\n"
    if problem.starter_code:
        text += f"### Format: {FORMAT_WITH_STARTER_CODE}\n```python\n{problem.starter_code}\n```\n\n"
    else:
        text += f"### Format: {FORMAT_WITHOUT_STARTER_CODE}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def chat_prompt(problem: Problem, tokenizer) -> str:
    messages = [{"role": "user", "content": SYSTEM_MESSAGE + "\n\n" + question_text(problem)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompts(problems: Sequence[Problem], style: str, tokenizer, exemplars: dict | None) -> tuple[list[str], bool]:
    """Prompts, and whether the tokenizer should add its special tokens (bos) itself."""
    if style == "base":
        if exemplars is None:
            raise InputError("eval.livecodebench.fewshot_dir", "base prompts need LiveCodeBench's exemplar files")
        return [base_prompt(problem, exemplars) for problem in problems], True
    prompts = [chat_prompt(problem, tokenizer) for problem in problems]
    bos = getattr(tokenizer, "bos_token", None)
    return prompts, not (bos and all(prompt.startswith(bos) for prompt in prompts))


def stop_sequences(style: str) -> list[str]:
    return [BASE_STOP] if style == "base" else []


def extract_code(output: str, style: str) -> str:
    """LiveCodeBench's extraction: the whole completion for base models, else the last fenced block."""
    if style == "base":
        return output.strip()
    lines = output.split("\n")
    fences = [number for number, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1 : fences[-1]])


# ---------------------------------------------------------------- grading


@dataclass(frozen=True)
class GradingLimits:
    """Per-test CPU seconds (LiveCodeBench gives 6 s per test) and the sandbox's memory."""

    timeout_s: float
    memory_mb: int

    @classmethod
    def of(cls, settings: LiveCodeBenchSettings) -> GradingLimits:
        # float: the result records 6.0 whether the config says 6 or 6.0.
        return cls(float(settings.timeout_s), int(settings.memory_mb))


def build_program(problem: Problem, code: str) -> str:
    """The candidate program with the check harness appended (see ``_lcb_check``)."""
    config = {"kind": problem.kind, "func_name": problem.func_name, "source": code}
    harness = _CHECK_SOURCE.read_text(encoding="utf-8")
    if problem.kind == "functional":
        # As LiveCodeBench does: the prelude, then the program, both at module level.
        return f"{PRELUDE}\n{code}\n\n_ABACUS_LCB = {config!r}\n{harness}"
    # A stdin program is compiled once (a syntax error fails the module) and run afresh for every test.
    return (
        f"_ABACUS_LCB = {config!r}\n"
        "_ABACUS_COMPILED = compile(_ABACUS_LCB['source'], '<solution>', 'exec')\n"
        "_ABACUS_PRELUDE_NAMES = {}\n"
        f"exec({PRELUDE!r}, _ABACUS_PRELUDE_NAMES)\n"
        "_ABACUS_PRELUDE_NAMES.pop('__builtins__', None)\n"
        f"{harness}"
    )


def grade(problem: Problem, code: str, limits: GradingLimits, isolation: str | None = None) -> dict:
    """Run every test of ``problem`` on ``code`` in one sandbox process; the verdict and the first failure."""
    from ..sandbox import call_repr, run_calls

    tests = problem.tests
    verdict: dict[str, Any] = {"question_id": problem.question_id, "n_tests": len(tests), "failed_test": None}
    if not code.strip():
        return {**verdict, "passed": False, "verdict": "no code"}
    calls = [call_repr([test.input, test.output]) for test in tests]
    # LiveCodeBench's own backstop for a whole problem: (timeout + 1) per test, plus 5 s.
    budget = (limits.timeout_s + 1) * len(tests) + 5
    result = run_calls(
        build_program(problem, code),
        CHECK_FUNCTION,
        calls,
        timeout=budget,
        memory_mb=limits.memory_mb,
        call_timeout=limits.timeout_s,
        isolation=isolation,
    )
    if result.module_error:
        return {**verdict, "passed": False, "verdict": f"compile error: {result.module_error}"}
    if result.outcomes is None:
        return {**verdict, "passed": False, "verdict": f"sandbox {result.status}"}
    for number, outcome in enumerate(result.outcomes):
        if outcome.ok and outcome.value == "True":
            continue
        if outcome.ok:
            why = "wrong answer"
        elif outcome.error == "Timeout":
            why = "time limit exceeded"
        else:
            why = f"runtime error: {outcome.error}"
        return {**verdict, "passed": False, "verdict": why, "failed_test": number}
    if len(result.outcomes) != len(tests):
        return {**verdict, "passed": False, "verdict": f"sandbox {result.status}: results for {len(result.outcomes)}"}
    return {**verdict, "passed": True, "verdict": "passed"}


class Grader:
    """Grades samples on worker threads (each waits on its own sandbox process) as they are submitted."""

    def __init__(self, workers: int, limits: GradingLimits, isolation: str | None = None):
        self.limits = limits
        self.isolation = isolation
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="lcb-grade")
        self._futures: dict[int, Future] = {}

    def submit(self, index: int, problem: Problem, code: str) -> None:
        self._futures[index] = self._pool.submit(grade, problem, code, self.limits, self.isolation)

    def results(self) -> dict[int, dict]:
        try:
            return {index: future.result() for index, future in sorted(self._futures.items())}
        finally:
            self._pool.shutdown(wait=True)


def pass_at_1(problems: Sequence[Problem], verdicts: Sequence[dict]) -> dict:
    """pass@1 overall and by difficulty (greedy: one sample per problem)."""
    by_difficulty = {}
    for level in DIFFICULTIES:
        chosen = [v["passed"] for p, v in zip(problems, verdicts) if p.difficulty == level]
        if chosen:
            by_difficulty[level] = {"pass@1": sum(chosen) / len(chosen), "n": len(chosen)}
    passed = [v["passed"] for v in verdicts]
    return {"pass@1": sum(passed) / len(passed) if passed else 0.0, "by_difficulty": by_difficulty}


# ---------------------------------------------------------------- the benchmark contract, and whole runs


class LiveCodeBenchJob(GenerationSettings):
    """The settings of one LiveCodeBench run: eval.livecodebench and the shared generation settings."""

    livecodebench: LiveCodeBenchSettings

    @classmethod
    def from_eval(cls, eval_settings: EvalSettings) -> LiveCodeBenchJob:
        """The job out of the whole eval section (what the rule's get_settings gives it)."""
        names = ("livecodebench", *GenerationSettings.model_fields)
        return cls.model_validate({name: getattr(eval_settings, name) for name in names})


class LiveCodeBenchRuleJob(LiveCodeBenchJob, EvalRuleJob):
    """Rule eval_livecodebench's settings: the job's, its model and where its data is."""


def prepare(settings: LiveCodeBenchSettings, data_paths: Sequence[str | Path] | None) -> Prepared[Problem]:
    """The problems in the contest-date window (the first ``limit`` of them) and the dataset record."""
    paths = [Path(path) for path in data_paths or []]
    if not paths:
        return Prepared(skip_reason="no LiveCodeBench release file configured (eval.livecodebench.path)")
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        return Prepared(skip_reason=f"data file(s) {', '.join(missing)} not found")
    problems = load_problems(paths)
    start, end = settings.start_date, settings.end_date
    window = in_window(problems, start, end)
    selected = window[: settings.limit] if settings.limit else window
    record = {
        **files_record(paths),
        "n_total": len(problems),
        "window": [start, end],
        "n_in_window": len(window),
        "functional": sum(p.kind == "functional" for p in selected),
        "stdin": sum(p.kind == "stdin" for p in selected),
    }
    if not selected:
        return Prepared(
            record=record, skip_reason=f"no problem of {len(problems)} has a contest date in {start}..{end}"
        )
    return Prepared(selected, record)


def _scores(problems: Sequence[Problem], verdicts: Sequence[dict], record: dict) -> dict:
    """The part of a result that model samples and given solutions share."""
    scores = pass_at_1(problems, verdicts)
    return {
        "benchmark": BENCHMARK,
        "status": "ok",
        "pass@1": scores["pass@1"],
        "by_difficulty": scores["by_difficulty"],
        "n": len(problems),
        "dataset": record,
    }


class LiveCodeBenchBenchmark(Benchmark[Problem]):
    """LiveCodeBench: problems in the window, LiveCodeBench's prompts, each sample graded in the sandbox as soon as
    its batch is generated (a pool of grading threads, each waiting on its own sandbox process)."""

    name = BENCHMARK

    def __init__(
        self,
        settings: LiveCodeBenchSettings,
        data_paths: Sequence[str | Path] | None,
        fewshot_dir: str | Path | None,
        workers: int,
        isolation: str | None = None,
    ):
        self.settings = settings
        self.data_paths = data_paths
        self.fewshot_dir = fewshot_dir
        self.limits = GradingLimits.of(settings)
        self.workers = workers
        self.isolation = isolation
        self._grader: Grader | None = None
        self._codes: dict[int, str] = {}

    def prepare(self) -> Prepared[Problem]:
        return prepare(self.settings, self.data_paths)

    def prompts(self, prepared: Prepared[Problem], tokenizer, style: str) -> Prompts | str:
        exemplars = load_exemplars(self.fewshot_dir) if style == "base" else None
        if style == "base" and exemplars is None:
            return f"base prompts need LiveCodeBench's exemplar files in {self.fewshot_dir}"
        texts, add_special = build_prompts(prepared.items, style, tokenizer, exemplars)
        record = prepared.record
        log.info(
            "%s: %d functional, %d stdin problems, %d grading workers",
            BENCHMARK, record["functional"], record["stdin"], self.workers,
        )  # fmt: skip
        return Prompts(texts, style, add_special, stop_sequences(style), self.settings.max_new_tokens)

    def answered(self, prepared: Prepared[Problem], prompts: Prompts, indices: list[int], outputs: list[str]) -> None:
        """Grading starts as each batch is generated."""
        if self._grader is None:
            self._grader = Grader(self.workers, self.limits, self.isolation)
        for index, output in zip(indices, outputs):
            self._codes[index] = extract_code(output, prompts.style)
            self._grader.submit(index, prepared.items[index], self._codes[index])

    def score(self, prepared: Prepared[Problem], prompts: Prompts, completions: list[str]) -> Scored:
        problems = prepared.items
        verdicts = list(self._grader.results().values()) if self._grader else []
        result = _scores(problems, verdicts, prepared.record)
        log.info("%s pass@1 %.4f (n=%d)", BENCHMARK, result["pass@1"], len(problems))
        samples = [
            {"question_id": p.question_id, "output": completion, "code": self._codes[i], **verdicts[i]}
            for i, (p, completion) in enumerate(zip(problems, completions))
        ]
        result.update(
            limit=self.settings.limit,
            limits={"timeout_s": self.limits.timeout_s, "memory_mb": self.limits.memory_mb},
            problems={p.question_id: verdict["verdict"] for p, verdict in zip(problems, verdicts)},
        )
        return Scored(result, samples)

    def skipped(self, prepared: Prepared[Problem]) -> dict:
        return {**super().skipped(prepared), "dataset": prepared.record}


def evaluate_model(
    settings: LiveCodeBenchJob,
    model_ref: str | Path,
    data_paths: Sequence[str | Path] | None,
    fewshot_dir: str | Path | None,
    samples_path: str | Path | None = None,
    threads: int | None = None,
    isolation: str | None = None,
) -> dict:
    """One greedy sample per problem in the window, graded in the sandbox while generation goes on."""
    section = settings.livecodebench
    workers = int(section.workers or threads or 1)
    benchmark = LiveCodeBenchBenchmark(section, data_paths, fewshot_dir, workers, isolation)
    return evaluate_with_model(benchmark, model_ref, settings, threads, samples_path)


def run_eval_livecodebench(settings: LiveCodeBenchRuleJob, paths: RulePaths) -> None:
    """Rule eval_livecodebench: greedy samples from one model on LiveCodeBench problems, graded in the sandbox."""
    # Release files and exemplars are inputs where they exist; missing ones keep the paths looked for, so the
    # benchmark is reported skipped naming them; one not configured at all is None.
    data = settings.data_locations(paths)
    result = evaluate_model(
        settings,
        settings.model.path,
        data.get("releases"),
        data.get("fewshot"),
        samples_path=paths.output["samples"],
        threads=paths.threads,
    )
    write_json(paths.output["result"], result)


def score_solutions(
    data_paths: Sequence[str | Path],
    solutions_path: str | Path,
    settings: LiveCodeBenchSettings | None = None,
    workers: int = 2,
    isolation: str | None = None,
) -> dict:
    """Grade given programs (``{"question_id", "code"}`` lines) on the problems in the window: the same grading
    as model samples. With reference solutions every problem must pass (the harness's self-check).
    ``settings``: the window, limit and grading limits (eval.livecodebench's defaults when not given)."""
    settings = settings or LiveCodeBenchSettings()
    benchmark = LiveCodeBenchBenchmark(settings, data_paths, None, workers, isolation)
    prepared = benchmark.prepare()
    if prepared.skip_reason:
        return benchmark.skipped(prepared)
    codes = _read_solutions(solutions_path)
    problems = prepared.items
    absent = [p.question_id for p in problems if p.question_id not in codes]
    if absent:
        raise InputError(solutions_path, f"no solution for {len(absent)} problem(s): {absent[:5]}")
    grader = Grader(workers, benchmark.limits, isolation)
    for index, problem in enumerate(problems):
        grader.submit(index, problem, codes[problem.question_id])
    verdicts = list(grader.results().values())
    return {
        **_scores(problems, verdicts, prepared.record),
        "failed": {v["question_id"]: v["verdict"] for v in verdicts if not v["passed"]},
        "problems": {v["question_id"]: v["verdict"] for v in verdicts},
    }


def _read_solutions(solutions_path: str | Path) -> dict[str, str]:
    codes = {}
    for number, row in enumerate(read_jsonl(solutions_path), 1):
        if "question_id" not in row or "code" not in row:
            raise InputError(solutions_path, f"line {number} lacks question_id or code")
        codes[str(row["question_id"])] = str(row["code"])
    return codes
