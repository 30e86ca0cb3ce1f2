"""The workflow's DAG for a config whose inputs are not on this machine: placeholders and a Snakemake dry run.

A paper-scale config names dumps, a checkpoint and benchmark data under absolute paths (/data/..., /models/...).
To see the DAG Snakemake would build for it anywhere, the config is copied with only those paths moved under a
scratch root, and every path the copy names is created there as an empty placeholder (a file when the name has a
suffix, else a directory). Everything else in the copy is the original text, byte for byte. The dry run itself
runs from the repository root, exactly as a user types it, with ``--forceall`` (so results already on disk do not
hide jobs) and ``--nolock`` (so it never touches a real run's lock).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import REPO_ROOT, read_config_file, resolve_config
from .errors import InputError

SNAKEFILE = REPO_ROOT / "workflow" / "Snakefile"
SHARED_DATA_FIELD = "{shared_data}"
# Rounds of "create the missing placeholder inputs the dry run names, run again" (inputs inside a placeholder
# directory, such as a checkpoint's config.json, are found this way).
MAX_PLACEHOLDER_ROUNDS = 5
# An absolute path as it appears in YAML text: not preceded by a path character (so a/b/c is not split).
_ABSOLUTE_PATH_TOKEN = re.compile(r"(?<![\w.~/-])/[^\s\"',\]\}#]+")
_RULE_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
_JOB_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")


# --- which paths a config names ------------------------------------------------------------------------------------


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def is_absolute_path(value: str) -> bool:
    """A string naming an absolute path (one leading slash; URLs and ``//`` are not)."""
    return value.startswith("/") and not value.startswith("//")


def absolute_paths(config: Mapping[str, Any]) -> list[str]:
    """Every absolute path the config names, sorted."""
    return sorted({s for s in _strings(config) if is_absolute_path(s)})


def remap_path(path: str, root: str | Path) -> str:
    """``/data/x`` -> ``<root>/data/x``."""
    return str(Path(root) / path.lstrip("/"))


def remap_config(config: Any, root: str | Path) -> Any:
    """A deep copy of ``config`` with every absolute path moved under ``root``; nothing else changes."""
    if isinstance(config, str):
        return remap_path(config, root) if is_absolute_path(config) else config
    if isinstance(config, Mapping):
        return {key: remap_config(value, root) for key, value in config.items()}
    if isinstance(config, list):
        return [remap_config(value, root) for value in config]
    return copy.deepcopy(config)


def remap_config_text(text: str, root: str | Path) -> str:
    """The YAML ``text`` with its absolute paths moved under ``root`` and every other byte unchanged.

    Only tokens equal to a path the parsed config holds are rewritten. The result is checked by parsing it: it
    must equal the parsed original with its paths remapped, else the edit is refused rather than guessed.
    """
    original = yaml.safe_load(text)
    paths = set(absolute_paths(original))
    rewritten = _ABSOLUTE_PATH_TOKEN.sub(
        lambda match: remap_path(match.group(0), root) if match.group(0) in paths else match.group(0), text
    )
    if yaml.safe_load(rewritten) != remap_config(original, root):
        raise InputError(
            None,
            "cannot move the configuration's absolute paths by editing its text (quoted or "
            "escaped paths?); write the copy by hand",
        )
    return rewritten


def placeholder_paths(resolved: Mapping[str, Any], root: str | Path) -> list[Path]:
    """What must exist under ``root`` for the (remapped, resolved) config: its absolute paths and its
    ``{shared_data}/...`` paths, as far as they lie under ``root`` (the repository's own relative paths do not)."""
    root = Path(root)
    shared = str(resolved.get("shared_data", ""))
    named = set()
    for value in _strings(resolved):
        if SHARED_DATA_FIELD in value:
            value = value.replace(SHARED_DATA_FIELD, shared)
        named.add(value)
    return sorted(Path(p) for p in named if Path(p).is_absolute() and Path(p).is_relative_to(root))


def _glob_match(pattern: str) -> str:
    """A concrete name a glob pattern matches (``*.parquet`` -> ``placeholder.parquet``)."""
    return re.sub(r"\[[^\]]*\]", "x", pattern).replace("*", "placeholder").replace("?", "x")


def create_placeholder(path: Path, root: str | Path) -> Path:
    """An empty file (the name has a suffix: dump.7z, test.jsonl) or directory (step_260000, mmlu/data); a glob
    pattern (open-web-math/data/*.parquet) gets one file that it matches."""
    path = Path(_glob_match(str(path)))
    if not path.is_relative_to(Path(root)):
        raise InputError(path, f"refusing to create a placeholder outside the scratch root {root}")
    if path.suffix and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    else:
        path.mkdir(parents=True, exist_ok=True)
    return path


def write_placeholder_config(configfile: str | Path, root: str | Path) -> Path:
    """Copy ``configfile`` to ``<root>/<name>`` with its absolute paths under ``root``; create their placeholders.

    Returns the copy's path. The copy is validated like the original (schema defaults fill the rest).
    """
    configfile, root = Path(configfile), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    text = configfile.read_text(encoding="utf-8")
    read_config_file(configfile)  # a clear error for a missing file or bad YAML before anything else
    copy_path = root / configfile.name
    copy_path.write_text(remap_config_text(text, root), encoding="utf-8")
    resolved = resolve_config(read_config_file(copy_path), source=configfile)
    for path in placeholder_paths(resolved, root):
        create_placeholder(path, root)
    return copy_path


# --- the dry run ---------------------------------------------------------------------------------------------------


def snakemake_command() -> list[str]:
    """This interpreter's Snakemake (the one installed with the package)."""
    return [sys.executable, "-m", "snakemake"]


def dry_run_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the dry run: ABACUS_SHARED_DATA would override the config's (remapped) shared_data."""
    env = {k: v for k, v in os.environ.items() if k != "ABACUS_SHARED_DATA"}
    env.update(extra or {})
    return env


def missing_inputs(output: str) -> list[str]:
    """The files a failed dry run lists under "affected files:" of its MissingInputException."""
    found, listing = [], False
    for line in output.splitlines():
        stripped = line.strip()
        if stripped == "affected files:":
            listing = True
        elif listing and line.startswith("        ") and stripped:
            found.append(stripped)
        else:
            listing = False
    return found


def run_dry_run(
    configfile: str | Path,
    root: str | Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> str:
    """``snakemake -n --forceall --nolock --configfile <configfile> <extra_args>`` from the repository root.

    Inputs the DAG asks for inside the scratch ``root`` (files within a placeholder directory) are created and the
    dry run repeated; anything else missing is an error with Snakemake's own message. Returns stdout+stderr.
    """
    command = [
        *snakemake_command(),
        "-n",
        "--forceall",
        "--nolock",
        "--snakefile",
        str(SNAKEFILE),
        "--configfile",
        str(configfile),
        *extra_args,
    ]
    for _ in range(MAX_PLACEHOLDER_ROUNDS):
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=dry_run_env(env), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        output = done.stdout + done.stderr
        if done.returncode == 0:
            return output
        missing = [Path(p) for p in missing_inputs(output)]
        if not missing or not all(p.is_absolute() and p.is_relative_to(Path(root)) for p in missing):
            break
        for path in missing:
            create_placeholder(path, root)
    raise InputError(configfile, f"the workflow's dry run failed:\n{output[-6000:]}")


def parse_job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: jobs per rule (without the total)."""
    counts, inside = {}, False
    for line in output.splitlines():
        stripped = line.strip()
        if stripped == "Job stats:":
            inside, counts = True, {}
        elif inside:
            match = _JOB_STATS_ROW.match(stripped)
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif match or (stripped and not stripped.startswith(("job", "-"))):
                inside = False
    if not counts:
        raise ValueError("no 'Job stats' table in the dry run's output")
    return counts


def _parse_resources(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(", ") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def parse_jobs(output: str) -> list[dict[str, Any]]:
    """Each job the dry run prints: {"rule", "wildcards", "resources"} (resource values as printed)."""
    jobs: list[dict[str, Any]] = []
    for line in output.splitlines():
        header = _RULE_HEADER.match(line.strip())
        if header and not line.startswith(" "):
            jobs.append({"rule": header.group(1), "wildcards": "", "resources": {}})
        elif jobs and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "resources":
                jobs[-1]["resources"] = _parse_resources(value)
            elif key == "wildcards":
                jobs[-1]["wildcards"] = _set_wildcards(value)
    return jobs


def _set_wildcards(printed: str) -> str:
    """The printed wildcards less empty ones (the main run's {exp} prefix is empty): "exp=, phase=sft" -> "phase=sft"."""
    return ", ".join(pair for pair in printed.split(", ") if not pair.endswith("="))


def check_jobs_match_counts(jobs: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> None:
    """The printed jobs and the job-stats table must agree, or the parsing missed something."""
    printed = Counter(job["rule"] for job in jobs)
    if dict(printed) != dict(counts):
        raise ValueError(f"dry run: jobs printed {dict(printed)} differ from the job stats table {dict(counts)}")


def job_gpus(resources: Mapping[str, str]) -> int:
    """GPUs a job reserves in total: ``gpus`` (train: nodes x GPUs per node) or the SLURM plugin's ``gpu``."""
    for key in ("gpus", "gpu"):
        if resources.get(key):
            return int(resources[key])
    return 0
