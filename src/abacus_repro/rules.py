"""The one way a rule script calls the package: ``run_rule(snakemake, entry)``.

Every stage entry point has the signature ``entry(settings, paths)``: ``settings`` is the stage's typed settings
object (abacus_repro.settings), built here from the rule's ``params.settings`` (which common.smk's
``get_settings`` fills with the config sections the rule needs), and ``paths`` is a :class:`RulePaths` with the
job's named inputs, outputs and logs, its wildcards, threads and resources. Stage code never sees the Snakemake
object, so a test, a benchmark or a person calls the same entry with the same two arguments.

A finished job writes its own record (rule, inputs, outputs, params, host, start and end) for the provenance
manifest: abacus_repro.job_record. A failing entry writes its error to the rule's first log before Snakemake reports the job as failed: an
:class:`~abacus_repro.errors.InputError` as one line naming the file and what is wrong, anything else with its
traceback.
"""

from __future__ import annotations

import logging
import sys
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import InputError
from .job_record import job_record, write_job_record
from .logging_setup import setup_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RulePaths:
    """What a job reads and writes, by the names the rule gives them (a name may hold a list of paths)."""

    input: Mapping[str, Any] = field(default_factory=dict)
    output: Mapping[str, Any] = field(default_factory=dict)
    log: Mapping[str, Any] = field(default_factory=dict)
    wildcards: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1
    resources: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of_job(cls, job: Any) -> RulePaths:
        """The paths of the job Snakemake's script directive describes (its ``snakemake`` object)."""
        return cls(
            input=_named(job.input),
            output=_named(job.output),
            log=_named(job.log),
            wildcards=_named(job.wildcards),
            threads=int(job.threads),
            resources={k: v for k, v in _named(job.resources).items() if not k.startswith("_")},
        )


def _named(entries: Any) -> dict[str, Any]:
    """A Snakemake named list as a plain mapping: ``{name: path or [paths]}`` for its named entries."""
    return {name: _plain(value) for name, value in entries.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)  # Snakemake's path objects are str subclasses
    if isinstance(value, int | float | bool) or value is None:
        return value
    return [str(item) for item in value]


def settings_type(entry: Callable[..., Any]) -> type[BaseModel]:
    """The settings class an entry point declares for its first parameter."""
    hints = typing.get_type_hints(entry)
    first = next(iter(hints.values()))
    if not (isinstance(first, type) and issubclass(first, BaseModel)):
        raise TypeError(f"{entry.__qualname__}: the first parameter must be typed with a settings class")
    return first


def build_settings(entry: Callable[..., Any], section: Mapping[str, Any]) -> BaseModel:
    try:
        return settings_type(entry).model_validate(dict(section))
    except ValidationError as err:
        raise InputError("config", f"settings of {entry.__qualname__}: {err}") from err


def run_rule(job: Any, entry: Callable[[Any, RulePaths], Any]) -> Any:
    """Log to the rule's log, build the entry's settings from ``params.settings``, call it, log any failure,
    and record the finished job."""
    start = time.time()
    setup_logging(job.log[0] if len(job.log) else None)
    paths = RulePaths.of_job(job)
    try:
        result = entry(build_settings(entry, job.params.settings), paths)
    except InputError as err:
        log.error("%s", err)
        sys.exit(1)
    except Exception:
        log.exception("rule %s failed", job.rule)
        raise
    write_job_record(job_record(job.rule, paths, dict(job.params.items()), start, time.time()))
    return result
