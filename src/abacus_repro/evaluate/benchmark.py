"""The contract every benchmark fills in, and the one way a code benchmark's prompts go through a model.

A benchmark is three steps, each a method of :class:`Benchmark`:

- ``prepare``: load and check the data; the items to evaluate, the dataset record (files, hashes, release, and
  whatever was left out, with the reason), or why the benchmark is skipped;
- ``prompts``: what the model is asked, for the resolved prompt style (chat or base);
- ``score``: turn the model's answers into metrics (and the samples file's rows).

The code benchmarks (HumanEval(+), MBPP(+), LiveCodeBench) are run by :func:`evaluate_with_model`: prepare, load
the model, build the prompts, decode them greedily in batches (``generation.generate_greedy``, the only
generation path), score. The general benchmarks run through lm-eval, whose own loop builds the prompts and
generates or scores log-likelihoods; ``general.GeneralBenchmarks`` fills in the same three steps around it.
"""

from __future__ import annotations

import json
import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..io import write_json
from ..rules import RulePaths
from ..settings import EvalModel, GenerationSettings, Settings

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@dataclass(frozen=True)
class Prepared(Generic[Item]):
    """What ``prepare`` found: the items to evaluate in order and the dataset record, or why nothing can be."""

    items: list[Item] = field(default_factory=list)
    record: dict = field(default_factory=dict)
    skip_reason: str | None = None


@dataclass(frozen=True)
class Prompts:
    """What a code benchmark asks the model, and how its answers are decoded."""

    texts: list[str]
    style: str  # "chat" or "base", resolved for the model's tokenizer
    add_special_tokens: bool  # False when the chat template already writes the bos token
    stop_sequences: list[str]
    max_new_tokens: int | None = None  # this benchmark's own budget; None: the run's (eval.max_new_tokens)


@dataclass(frozen=True)
class Scored:
    """A benchmark's result (written as result.json) and its samples file's rows."""

    result: dict
    samples: list[dict]


class Benchmark(ABC, Generic[Item]):
    """One benchmark of one run; an object holds the run's settings and paths (and, while scoring, its state)."""

    name: str  # the benchmark's name in results (a class attribute, or set per object for evalplus's datasets)

    @abstractmethod
    def prepare(self) -> Prepared[Item]:
        """Load and check the data: the items to evaluate and the dataset record, or the reason to skip."""

    @abstractmethod
    def prompts(self, prepared: Prepared[Item], tokenizer: Any, style: str) -> Prompts | str:
        """What the model is asked (``style`` is resolved: chat or base), or the reason the benchmark is skipped."""

    @abstractmethod
    def score(self, prepared: Prepared[Item], prompts: Any, answers: Any) -> Scored:
        """Metrics from the model's answers (for a code benchmark: one completion per prompt, in order)."""

    def answered(self, prepared: Prepared[Item], prompts: Prompts, indices: list[int], completions: list[str]) -> None:
        """Called as each batch of completions is ready (indices into the prompts), so scoring can start while
        the next batch is generated. Nothing by default."""

    def skipped(self, prepared: Prepared[Item]) -> dict:
        log.warning("%s skipped: %s", self.name, prepared.skip_reason)
        return {"benchmark": self.name, "status": "skipped", "reason": prepared.skip_reason}


def evaluate_with_model(
    benchmark: Benchmark,
    model_ref: str | Path,
    generation: GenerationSettings,
    threads: int | None = None,
    samples_path: str | Path | None = None,
) -> dict:
    """Run a code benchmark: prepare, one greedy completion per prompt from the model, score.

    A skipped benchmark leaves an empty samples file, so a rule's outputs exist either way.
    """
    # Imported here: torch and transformers are for the jobs that generate, not for building the DAG.
    from .generation import generate_greedy, load_model, resolve_prompt_style

    prepared = benchmark.prepare()
    if prepared.skip_reason:
        return _skip(benchmark, prepared, samples_path)
    model, tokenizer = load_model(model_ref, threads=threads)
    style = resolve_prompt_style(tokenizer, generation.prompt_style)
    prompts = benchmark.prompts(prepared, tokenizer, style)
    if isinstance(prompts, str):
        return _skip(benchmark, replace(prepared, skip_reason=prompts), samples_path)
    prompts = replace(prompts, max_new_tokens=prompts.max_new_tokens or generation.max_new_tokens)
    log.info(
        "%s: %d problems, %s prompts, up to %d new tokens",
        benchmark.name, len(prompts.texts), prompts.style, prompts.max_new_tokens,
    )  # fmt: skip
    completions = generate_greedy(
        model,
        tokenizer,
        prompts.texts,
        max_new_tokens=prompts.max_new_tokens,
        stop_sequences=prompts.stop_sequences,
        batch_size=generation.batch_size,
        add_special_tokens=prompts.add_special_tokens,
        desc=f"{benchmark.name} generation",
        on_batch=lambda indices, texts: benchmark.answered(prepared, prompts, indices, texts),
    )
    scored = benchmark.score(prepared, prompts, completions)
    if samples_path:
        write_jsonl(samples_path, scored.samples)
    # Every setting that moves the score goes with it (the sanitizer, where there is one, is the benchmark's).
    return {
        **scored.result,
        "model": str(model_ref),
        "prompt_style": prompts.style,
        "decoding": "greedy",
        "batch_size": generation.batch_size,
        "max_new_tokens": prompts.max_new_tokens,
    }


def _skip(benchmark: Benchmark, prepared: Prepared, samples_path: str | Path | None) -> dict:
    if samples_path:
        write_jsonl(samples_path, [])
    return benchmark.skipped(prepared)


class EvalRuleJob(Settings):
    """What an evaluation rule's job is told besides its benchmark's settings (common.smk's
    get_eval_job_settings): its model's eval.models entry, and where the benchmark's data is: every configured
    location by name ({shared_data} filled in), of which those that exist are also the rule's inputs."""

    model: EvalModel
    data: dict[str, str | list[str]]

    def data_locations(self, paths: RulePaths) -> dict[str, str | list[str]]:
        """Each data location: the rule's input where it is one, else the configured path, which the benchmark
        then reports as not found."""
        return {name: paths.input.get(name, where) for name, where in self.data.items()}


# ---------------------------------------------------------------- files every benchmark writes or records


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def fresh_dir(path: str | Path) -> Path:
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def run_model_rule(evaluate: Callable[..., dict], settings: EvalRuleJob, paths: RulePaths) -> None:
    """A rule that scores one model on one benchmark file: ``evaluate(settings, model, data_path, ...)`` with the
    rule's paths, its result written to the rule's ``result`` output."""
    # The data file is an input where it exists (the configured one, else the package's or the cached release:
    # common.smk); a configured one that is missing keeps the path looked for, so the record names it; with
    # none found locally the official release is downloaded into the data cache, if eval.download allows.
    data = settings.data_locations(paths)
    result = evaluate(
        settings,
        settings.model.path,
        data.get("data"),
        work_dir=Path(paths.output["result"]).parent / "work",
        samples_path=paths.output["samples"],
        threads=paths.threads,
        parallel=max(2, paths.threads),  # test processes mostly wait on each other
    )
    write_json(paths.output["result"], result)
