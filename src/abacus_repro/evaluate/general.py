"""General benchmarks through the real lm-eval harness (0.4.13), on local data files.

Benchmarks, their protocols (as lm-eval's own tasks) and the score reported:

| benchmark | shots | how | score |
|---|---|---|---|
| ARC-Easy | 0 | log-likelihood of each answer text | acc |
| HellaSwag | 0 | log-likelihood of each ending | acc_norm |
| MMLU | 5 (each subject's dev split) | log-likelihood of the letter | acc, subjects weighted by size |
| C-Eval | 5 (dev), scored on val | log-likelihood of the letter, Chinese prompt | acc, weighted |
| CMMLU | 5 (dev) | log-likelihood of the letter, Chinese prompt | acc, weighted |
| BBH | 3, chain of thought (official prompts) | greedy generation, text after "the answer is " | exact_match, weighted |
| GSM8K | 5 (from the train file) | greedy generation, the number after "#### " | exact_match (strict-match) |

The task definitions live in ``tasks/*.yaml`` next to this module. They name their data through placeholders
(``${data}`` for a file, ``${root}`` for a benchmark folder, ``${subject}`` for per-subject tasks);
``render_tasks`` fills them in from ``eval.general.data`` (``abacus_repro.settings.GeneralDataPaths``, where the
defaults live), writes the result into the run's work directory, and lm-eval's ``TaskManager(include_path=...)``
registers exactly those files. A benchmark whose data files are absent is reported as skipped with the reason;
it never fails the run.

``GeneralBenchmarks`` fills in the benchmark contract (``benchmark``): ``prepare`` renders the task files,
``prompts`` hands lm-eval the rendered tasks and ``score`` runs lm-eval's own evaluation loop, which builds
each prompt from the task definition and generates or scores log-likelihoods itself (so the code benchmarks'
generation path is not used here). The model is loaded once and handed to lm-eval as an ``HFLM`` built from
the model and tokenizer objects, so a model class registered by ``abacus_repro.model`` needs no special
support inside lm-eval.
"""

from __future__ import annotations

import json
import logging
import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import PositiveInt

from ..errors import InputError
from ..io import sha256_file, write_json
from ..rules import RulePaths
from ..settings import EvalSettings, GeneralDataPaths, GeneralEvalSettings, Settings
from .benchmark import Benchmark, EvalRuleJob, Prepared, Scored, fresh_dir

log = logging.getLogger(__name__)

TASK_TEMPLATES = Path(__file__).resolve().parent / "tasks"
# Generation budget of the generative tasks when eval.general.max_gen_toks is not set (lm-eval's values).
DEFAULT_MAX_GEN_TOKS = {"bbh": 1024, "gsm8k": 256}
# lm-eval's own seeds, stated here so a change of defaults upstream cannot change our numbers silently.
SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}


@dataclass
class RenderedTask:
    """A benchmark ready for lm-eval: the name to ask for, its subtasks and the data files it reads."""

    benchmark: str
    lm_eval_name: str
    subtasks: list[str]
    data_files: list[Path]
    num_fewshot: int
    metric: str = "acc"
    metric_filter: str = "none"  # lm-eval's filter whose result is the score (generation tasks)


@dataclass(frozen=True)
class RenderContext:
    """Where the data is and the settings the templates take."""

    data: dict[str, Path]
    out_dir: Path
    max_gen_toks: dict[str, int]


def _render(template: str, destination: Path, **values: str) -> None:
    text = (TASK_TEMPLATES / template).read_text(encoding="utf-8")
    rendered = string.Template(text).safe_substitute(**values)
    names = (
        "data", "fewshot_data", "root", "subject", "subject_title", "subject_tasks", "group", "metric", "filter",
        "description", "fewshot_samples", "max_gen_toks", "csv_kwargs",
    )  # fmt: skip
    leftover = [name for name in names if "${" + name + "}" in rendered]
    if leftover:
        raise AssertionError(f"{template}: placeholders {leftover} were not filled in")
    destination.write_text(rendered, encoding="utf-8")


def _single_file_task(
    benchmark: str, template: str, lm_eval_name: str, metric: str = "acc"
) -> Callable[[RenderContext], RenderedTask | str]:
    def render(context: RenderContext) -> RenderedTask | str:
        data = context.data[benchmark]
        if not data.is_file():
            return f"data file {data} not found"
        _render(template, context.out_dir / template, data=str(data))
        return RenderedTask(benchmark, lm_eval_name, [lm_eval_name], [data], 0, metric)

    return render


def render_hellaswag(context: RenderContext) -> RenderedTask | str:
    """rowanz's JSON lines (or llm-foundry's) through hellaswag_jsonl.yaml; llama.cpp's text rendering through
    hellaswag.yaml."""
    data = context.data["hellaswag"]
    if not data.is_file():
        return f"data file {data} not found"
    template = "hellaswag.yaml" if data.suffix == ".txt" else "hellaswag_jsonl.yaml"
    _render(template, context.out_dir / "hellaswag.yaml", data=str(data))
    return RenderedTask("hellaswag", "abacus_hellaswag", ["abacus_hellaswag"], [data], 0, "acc_norm")


def render_gsm8k(context: RenderContext) -> RenderedTask | str:
    test, train = context.data["gsm8k"], context.data["gsm8k_fewshot"]
    missing = [str(path) for path in (test, train) if not path.is_file()]
    if missing:
        return f"data file(s) {', '.join(missing)} not found"
    _render(
        "gsm8k.yaml",
        context.out_dir / "gsm8k.yaml",
        data=str(test),
        fewshot_data=str(train),
        max_gen_toks=str(context.max_gen_toks["gsm8k"]),
    )
    return RenderedTask("gsm8k", "abacus_gsm8k", ["abacus_gsm8k"], [test, train], 5, "exact_match", "strict-match")


def parse_bbh_prompt(text: str) -> tuple[str, list[dict[str, str]]]:
    """(description, exemplars as {input, target}) from an official BBH chain-of-thought prompt file."""
    if "-----\n" in text:
        text = text.split("-----\n", 1)[1]  # the canary line goes
    description, _, shots = text.strip().partition("\n\n")
    exemplars = []
    for block in ("\n\n" + shots).split("\n\nQ: ")[1:]:
        question, sep, answer = block.partition("\nA: Let's think step by step.\n")
        if not sep:
            raise ValueError(f'exemplar without "A: Let\'s think step by step.": {block[:80]!r}')
        exemplars.append({"input": question.strip(), "target": answer.strip()})
    if not exemplars:
        raise ValueError('no "Q: ..." exemplar found')
    return description.strip(), exemplars


def render_bbh(context: RenderContext) -> RenderedTask | str:
    root = context.data["bbh"]
    subjects = sorted(
        path.stem for path in root.glob("*.json") if (root / "cot-prompts" / f"{path.stem}.txt").is_file()
    ) if root.is_dir() else []  # fmt: skip
    if not subjects:
        return f"no BBH task with both <task>.json and cot-prompts/<task>.txt under {root}"
    names, files = [], []
    for subject in subjects:
        prompt_file = root / "cot-prompts" / f"{subject}.txt"
        try:
            description, exemplars = parse_bbh_prompt(prompt_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise InputError(prompt_file, f"not an official BBH chain-of-thought prompt ({err})") from err
        _render(
            "bbh_subject.yaml",
            context.out_dir / f"bbh_{subject}.yaml",
            root=str(root),
            subject=subject,
            # JSON strings and lists are YAML flow scalars: any text goes in safely.
            description=json.dumps(description + "\n\n", ensure_ascii=False),
            fewshot_samples=json.dumps(exemplars, ensure_ascii=False),
            max_gen_toks=str(context.max_gen_toks["bbh"]),
        )
        names.append(f"abacus_bbh_{subject}")
        files += [root / f"{subject}.json", prompt_file]
    _render(
        "subject_group.yaml",
        context.out_dir / "bbh_group.yaml",
        group="abacus_bbh",
        subject_tasks="[" + ", ".join(names) + "]",
        metric="exact_match",
        filter="get-answer",
    )
    return RenderedTask("bbh", "abacus_bbh", names, files, 3, "exact_match", "get-answer")


@dataclass(frozen=True)
class SubjectBenchmark:
    """A benchmark of per-subject CSV pairs (test + dev for the 5 shots), one lm-eval task per subject."""

    name: str
    template: str
    test_pattern: str  # file names with {subject}, relative to the benchmark's folder
    dev_pattern: str
    titles: dict[str, str]  # subject -> the name its prompt uses (Chinese for C-Eval and CMMLU)
    num_fewshot: int = 5
    # For benchmarks whose CSVs come in more than one layout (MMLU): the template's ${csv_kwargs} for a file.
    csv_kwargs: Callable[[Path], str] | None = None

    def subjects(self, root: Path) -> list[str]:
        """Subjects with both a test and a dev file under the benchmark's folder ``root``, sorted."""
        test_dir = (root / self.test_pattern).parent
        prefix, suffix = Path(self.test_pattern).name.split("{subject}")
        found = []
        for test_file in sorted(test_dir.glob(f"{prefix}*{suffix}")) if test_dir.is_dir() else []:
            subject = test_file.name[len(prefix) : len(test_file.name) - len(suffix)]
            if (root / self.dev_pattern.format(subject=subject)).is_file():
                found.append(subject)
        return found

    def render(self, context: RenderContext) -> RenderedTask | str:
        root = context.data[self.name]
        out_dir = context.out_dir
        subjects = self.subjects(root)
        if not subjects:
            return f"no {self.name} subject with both a test and a dev CSV under {root}"
        names, files = [], []
        for subject in subjects:
            extra = {}
            if self.csv_kwargs is not None:
                test_file = root / self.test_pattern.format(subject=subject)
                dev_file = root / self.dev_pattern.format(subject=subject)
                extra["csv_kwargs"] = self.csv_kwargs(test_file)
                if self.csv_kwargs(dev_file) != extra["csv_kwargs"]:
                    raise InputError(dev_file, f"a different CSV layout from {test_file}")
            _render(
                self.template,
                out_dir / f"{self.name}_{subject}.yaml",
                root=str(root),
                subject=subject,
                subject_title=self.titles.get(subject, subject.replace("_", " ")),
                **extra,
            )
            names.append(f"abacus_{self.name}_{subject}")
            files += [root / self.test_pattern.format(subject=subject), root / self.dev_pattern.format(subject=subject)]
        _render(
            "subject_group.yaml",
            out_dir / f"{self.name}_group.yaml",
            group=f"abacus_{self.name}",
            subject_tasks="[" + ", ".join(names) + "]",
            metric="acc",
            filter="none",
        )
        return RenderedTask(self.name, f"abacus_{self.name}", names, files, self.num_fewshot)


MMLU_HEADER = "question,choice0,choice1,choice2,choice3,answer"


def mmlu_csv_kwargs(path: Path) -> str:
    """The header layout (HF exports) is read with its header row; hendrycks' original has none."""
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline().strip().lstrip("\ufeff")
    if first == MMLU_HEADER:
        columns, header = MMLU_HEADER.split(","), "header: 0"
    else:
        columns = ["question", "A", "B", "C", "D", "answer"]
        header = f"header: null\n  column_names: [{', '.join(columns)}]"
    # Every cell as the text it is ("0.50" stays "0.50"); process_docs reads the answer.
    converters = ", ".join(f"{column}: !function builtins.str" for column in columns)
    return f"{header}\n  converters: {{{converters}}}"


MMLU = SubjectBenchmark(
    "mmlu", "mmlu_subject.yaml", "test/{subject}_test.csv", "dev/{subject}_dev.csv", {}, csv_kwargs=mmlu_csv_kwargs
)
# Chinese subject names as C-Eval's and CMMLU's own prompts use them (subjects of the shared subsets; others
# fall back to the English name).
CEVAL = SubjectBenchmark(
    "ceval",
    "ceval_subject.yaml",
    "val/{subject}_val.csv",
    "dev/{subject}_dev.csv",
    {
        "computer_network": "计算机网络",
        "operating_system": "操作系统",
        "college_programming": "大学编程",
        "high_school_mathematics": "高中数学",
    },
)
CMMLU = SubjectBenchmark(
    "cmmlu",
    "cmmlu_subject.yaml",
    "test/{subject}.csv",
    "dev/{subject}.csv",
    {"computer_science": "计算机科学", "machine_learning": "机器学习", "high_school_mathematics": "高中数学"},
)


def mmlu_subjects(shared_data: Path) -> list[str]:
    return MMLU.subjects(data_locations(shared_data)["mmlu"])


RENDERERS: dict[str, Callable[[RenderContext], RenderedTask | str]] = {
    "arc_easy": _single_file_task("arc_easy", "arc_easy.yaml", "abacus_arc_easy"),
    "hellaswag": render_hellaswag,
    "mmlu": MMLU.render,
    "ceval": CEVAL.render,
    "cmmlu": CMMLU.render,
    "bbh": render_bbh,
    "gsm8k": render_gsm8k,
}


def data_locations(
    shared_data: str | Path, data: GeneralDataPaths | Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Each benchmark's data path ({shared_data} filled in, absolute): eval.general.data, or a mapping of some
    of its keys over its defaults."""
    if not isinstance(data, GeneralDataPaths):
        unknown = sorted(set(data or {}) - set(GeneralDataPaths.model_fields))
        if unknown:
            raise InputError(
                "eval.general.data", f"unknown keys {unknown}; known: {sorted(GeneralDataPaths.model_fields)}"
            )
        data = GeneralDataPaths.model_validate(dict(data or {}))
    shared_data = Path(shared_data).resolve()
    return {name: Path(str(value).format(shared_data=shared_data)).resolve() for name, value in data}


def render_tasks(
    benchmarks: list[str],
    shared_data: str | Path,
    out_dir: str | Path,
    data: GeneralDataPaths | Mapping[str, str] | None = None,
    max_gen_toks: int | None = None,
) -> dict[str, RenderedTask | str]:
    """Each requested benchmark: a RenderedTask, or the reason it is skipped. ``max_gen_toks`` None: each
    generative task's own budget (lm-eval's)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = {name: int(max_gen_toks or default) for name, default in DEFAULT_MAX_GEN_TOKS.items()}
    context = RenderContext(data_locations(shared_data, data), out_dir, budget)
    rendered: dict[str, RenderedTask | str] = {}
    for name in benchmarks:
        renderer = RENDERERS.get(name)
        rendered[name] = renderer(context) if renderer else "no lm-eval task definition in this repository"
    return rendered


def _metrics(results: dict, name: str) -> dict[str, float]:
    """lm-eval's ``"metric,filter"`` keys: ``metric`` where the filter is ``none``, else ``metric,filter``
    (so gsm8k's strict-match and flexible-extract stay apart); stderr included."""
    metrics = {}
    for key, value in results.get(name, {}).items():
        if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        metric, filter_name = key.split(",", 1)
        metrics[metric if filter_name == "none" else key] = float(value)
    return metrics


def _n_evaluated(output: dict, task: RenderedTask) -> int:
    counts = output.get("n-samples", {})
    return sum(int(counts[name]["effective"]) for name in task.subtasks if name in counts)


def build_lm(model, tokenizer, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    max_length = getattr(model.config, "max_position_embeddings", None)
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


def evaluate_task(lm, task: RenderedTask, task_manager, limit: int | None) -> dict:
    import lm_eval

    output = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task.lm_eval_name],
        limit=limit,
        task_manager=task_manager,
        log_samples=False,
        bootstrap_iters=1000,
        **SEEDS,
    )
    metrics = _metrics(output["results"], task.lm_eval_name)
    key = task.metric if task.metric_filter == "none" else f"{task.metric},{task.metric_filter}"
    if key not in metrics:
        raise RuntimeError(f"lm-eval returned no {key} for {task.lm_eval_name}: {output['results']}")
    subtask_scores = {}
    if task.subtasks != [task.lm_eval_name]:
        subtask_scores = {name: _metrics(output["results"], name).get(key) for name in task.subtasks}
    return {
        "status": "ok",
        "score": metrics[key],
        "metric": key,
        "metrics": metrics,
        "n": _n_evaluated(output, task),
        "limit": limit,
        "num_fewshot": task.num_fewshot,
        "lm_eval_task": task.lm_eval_name,
        "subtasks": subtask_scores,
        "data": [{"path": str(path), "sha256": sha256_file(path)} for path in task.data_files],
    }


class GeneralJob(Settings):
    """The settings of one run of the general benchmarks: eval.general and eval.batch_size."""

    general: GeneralEvalSettings
    batch_size: PositiveInt

    @classmethod
    def from_eval(cls, eval_settings: EvalSettings) -> GeneralJob:
        """The job out of the whole eval section (what the rule's get_settings gives it)."""
        return cls(general=eval_settings.general, batch_size=eval_settings.batch_size)


class GeneralRuleJob(GeneralJob, EvalRuleJob):
    """Rule eval_general's settings: the job's, its model, where its data is, and the shared data folder that
    eval.general.data's locations name ({shared_data}; ABACUS_SHARED_DATA wins over the config's)."""

    shared_data: str


class GeneralBenchmarks(Benchmark[RenderedTask]):
    """The benchmarks of eval.general.tasks through lm-eval, which owns prompting and generation: ``prompts`` is
    the task registry over the rendered task files, ``score`` runs lm-eval on each task with the model."""

    name = "general"

    def __init__(self, settings: GeneralJob, shared_data: str | Path, work_dir: str | Path):
        self.settings = settings.general
        self.shared_data = shared_data
        self.work_dir = Path(work_dir)

    def prepare(self) -> Prepared[RenderedTask]:
        """Task files for lm-eval in a fresh work directory; ``record`` maps each benchmark that cannot run (its
        data is absent) to the reason. Never skipped as a whole: each benchmark is reported on its own."""
        self.work_dir = fresh_dir(self.work_dir)
        settings = self.settings
        rendered = render_tasks(
            list(settings.tasks), self.shared_data, self.work_dir / "tasks", settings.data, settings.max_gen_toks
        )
        runnable = [task for task in rendered.values() if isinstance(task, RenderedTask)]
        reasons = {name: reason for name, reason in rendered.items() if isinstance(reason, str)}
        for name, reason in reasons.items():
            log.warning("%s skipped: %s", name, reason)
        return Prepared(runnable, reasons)

    def prompts(self, prepared: Prepared[RenderedTask], tokenizer=None, style: str | None = None):
        """lm-eval's registry of exactly the rendered tasks: lm-eval builds each prompt from its task definition
        (the tasks fix their own prompt format, so the tokenizer and prompt style play no part)."""
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=str(self.work_dir / "tasks"), include_defaults=False)

    def score(self, prepared: Prepared[RenderedTask], prompts, answers) -> Scored:
        """Each task's scores from lm-eval with the model (``answers``: the lm-eval model that answers the
        prompts inside lm-eval's loop)."""
        from datasets.exceptions import DatasetGenerationError

        limit = self.settings.limit
        results: dict[str, dict] = {}
        for task in prepared.items:
            log.info("%s: lm-eval task %s, limit %s", task.benchmark, task.lm_eval_name, limit)
            try:
                results[task.benchmark] = evaluate_task(answers, task, prompts, limit)
            except (ValueError, KeyError, OSError, DatasetGenerationError) as err:
                # Data that is present but unreadable is the user's to fix: name the files.
                files = ", ".join(str(path) for path in task.data_files[:4])
                raise InputError(
                    files, f"lm-eval could not run {task.benchmark} ({type(err).__name__}: {err})"
                ) from err
            entry = results[task.benchmark]
            log.info("%s: %s %.4f on %d examples", task.benchmark, entry["metric"], entry["score"], entry["n"])
        return Scored(results, [])


def evaluate_model(
    settings: GeneralJob,
    model_ref: str | Path,
    shared_data: str | Path,
    work_dir: str | Path,
    threads: int | None = None,
) -> dict:
    """Every benchmark in ``eval.general.tasks``: scores, or skipped with the reason."""
    # Local data files only: never ask the Hub for data (nor for the model, unless it is named by a hub id).
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if Path(model_ref).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval

    from .generation import load_model

    benchmarks = GeneralBenchmarks(settings, shared_data, work_dir)
    prepared = benchmarks.prepare()
    results = {name: {"status": "skipped", "reason": reason} for name, reason in prepared.record.items()}
    if prepared.items:  # else the model is never loaded
        model, tokenizer = load_model(model_ref, threads=threads)
        lm = build_lm(model, tokenizer, settings.batch_size)
        results.update(benchmarks.score(prepared, benchmarks.prompts(prepared), lm).result)
    return {
        "model": str(model_ref),
        "lm_eval_version": lm_eval.__version__,
        "limit": settings.general.limit,
        "tasks": {name: results[name] for name in settings.general.tasks},
    }


def run_eval_general(settings: GeneralRuleJob, paths: RulePaths) -> None:
    """Rule eval_general: general benchmarks (MMLU, HellaSwag, ARC-e, BBH, C-Eval, CMMLU, GSM8K) through lm-eval."""
    # Every data location the tasks read, by name: an input where it exists, else the path looked for, so that
    # benchmark is reported skipped naming it. They take the place of eval.general.data's.
    general = settings.general
    data = general.data.model_copy(update=settings.data_locations(paths))
    job = settings.model_copy(update={"general": general.model_copy(update={"data": data})})
    result = evaluate_model(
        job, settings.model.path, settings.shared_data, Path(paths.output["result"]).parent / "work", paths.threads
    )
    write_json(paths.output["result"], result)
