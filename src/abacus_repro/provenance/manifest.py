"""The provenance manifest: for every output of a run, what produced it, from what, with which code and software.

Sources, joined per output:
- The job's own record (``logs/jobs/``, written by every rule script through ``abacus_repro.rules.run_rule``;
  see abacus_repro/job_record.py): rule, wildcards, inputs, parameters, start and end, logs, host and cluster job id, the
  conda environment it ran in, and the sha256 of small inputs as they were when the job finished.
- The files themselves: sha256 of each output (each file of a directory output) and of each input now.
- The workflow (when the manifest is written by the ``provenance`` rule): each rule's script, its code
  fingerprint and named parameters.
- The run's environment: git commit and dirty state, Python, every installed package's version, host, seeds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any

from ..job_record import JobRecords, recorded_input_sha256
from .code import code_fingerprint, code_version, fingerprint_digest_of
from .hashing import digest_of_hashes, output_digest, sha256_file
from .rules import kind_of

FORMAT = "abacus-repro-provenance/1"
# Written by `snakemake --report` from the manifest, after it: not a rule's output.
NOT_RUN_OUTPUTS = {"results/report.html"}
PROVENANCE_DIR = "results/provenance"

KEY_PACKAGES = [
    "abacus-repro",
    "torch",
    "transformers",
    "tokenizers",
    "snakemake",
    "pyarrow",
    "datasets",
    "ruff",
    "evalplus",
    "lm-eval",
    "gguf",
    "llama-cpp-python",
    "sentence-transformers",
    "scikit-learn",
    "numpy",
]


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def installed_distributions() -> dict[str, str]:
    """Every distribution importable by this interpreter, name -> version (what `pip freeze` would list)."""
    return dict(_installed_distributions())


@lru_cache(maxsize=1)
def _installed_distributions() -> tuple[tuple[str, str], ...]:
    # Reading every package's metadata takes a while; one process sees one environment.
    found: dict[str, str] = {}
    for dist in importlib_metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return tuple(sorted(found.items()))


def environment(repo_dir: Path | None = None) -> dict[str, Any]:
    lock = repo_dir / "requirements.lock" if repo_dir else None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "all_packages": installed_distributions(),
        "requirements_lock_sha256": sha256_file(lock) if lock and lock.is_file() else None,
        # The shared-data location wins over the config's when set (workflow/rules/common.smk).
        "ABACUS_SHARED_DATA": os.environ.get("ABACUS_SHARED_DATA"),
    }


def seeds_of(config: dict[str, Any]) -> dict[str, Any]:
    """Every seed in the configuration, by dotted key (``seed``, ``train.data_seed``, ...)."""
    found: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                dotted = f"{prefix}.{key}" if prefix else str(key)
                if "seed" in str(key).lower() and not isinstance(value, dict | list):
                    found[dotted] = value
                walk(value, dotted)

    walk(config, "")
    return found


class HashCache:
    """sha256 of outputs and inputs (most inputs are other outputs), each computed once."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._cache: dict[str, tuple[str, dict[str, str]] | None] = {}
        # The run's job records, read once (the audit looks up each drifted output's job).
        self.records = JobRecords(workdir)

    def tree(self, path: str) -> tuple[str, dict[str, str]] | None:
        """(digest, {file: sha256}) with files named relative to the run directory; None when absent."""
        if path not in self._cache:
            full = self.workdir / path
            self._cache[path] = (
                output_digest(full, self.workdir if not Path(path).is_absolute() else full.parent)
                if full.exists()
                else None
            )
        return self._cache[path]

    def digest(self, path: str) -> str | None:
        found = self.tree(path)
        return found[0] if found else None


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def collect_outputs(workdir: Path, results_dir: Path, records: JobRecords) -> tuple[list[str], list[str]]:
    """(declared, undeclared): outputs a job recorded that exist, and other files under ``results_dir``.

    Provenance's own files and `snakemake --report`'s page are left out. A file inside a recorded directory
    output (a model's weights) belongs to that output, not to the undeclared list.
    """

    def excluded(path: str) -> bool:
        return path in NOT_RUN_OUTPUTS or _is_within(path, PROVENANCE_DIR)

    declared = [p for p in records.outputs() if (workdir / p).exists() and not excluded(p)]
    directories = [p for p in declared if (workdir / p).is_dir()]
    declared_set = set(declared)
    undeclared: list[str] = []
    root = workdir / results_dir
    if root.is_dir():
        for full in sorted(root.rglob("*")):
            rel = full.relative_to(workdir).as_posix()
            if (
                not full.is_file()
                or rel in declared_set
                or excluded(rel)
                or full.name == ".snakemake_timestamp"
                or any(_is_within(rel, d) for d in directories)
            ):
                continue
            # Without a job's record, a Hugging Face model directory is still one output, not its files.
            model = next(
                (p for p in full.parents if _is_within(p.as_posix(), root.as_posix()) and is_model_dir(p)), None
            )
            rel = model.relative_to(workdir).as_posix() if model else rel
            if rel not in undeclared:
                undeclared.append(rel)
    return declared, undeclared


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def attribute_by_location(path: str, declared_rules: dict[str, str | None]) -> str | None:
    """The rule that owns the deepest directory holding both ``path`` and that rule's declared outputs.

    Work files a rule leaves next to its outputs (evalplus caches) are attributed to it; when two rules share
    that directory the file stays unattributed rather than guessed.
    """
    parent = PurePosixPath(path).parent
    for directory in [parent, *parent.parents]:
        if str(directory) in {".", "results"}:
            break
        owners = {rule for out, rule in declared_rules.items() if rule and _is_within(out, str(directory))}
        if len(owners) == 1:
            return owners.pop()
        if len(owners) > 1:
            return None
    return None


def describe_output(
    path: str,
    workdir: Path,
    hashes: HashCache,
    records: JobRecords,
    *,
    declared: bool,
    rule_hint: str | None = None,
) -> dict[str, Any]:
    full = workdir / path
    digest, files = hashes.tree(path)
    record = (records.of(path) if declared else None) or {}
    rule = record.get("rule") or rule_hint
    reason = kind_of(rule).why_nondeterministic(path)
    inputs = {inp: hashes.digest(inp) for inp in sorted(record.get("input") or [])}
    # The job hashed its small inputs when it ended; a different hash now means the output is stale.
    changed_since = sorted(
        inp
        for inp, now in inputs.items()
        if (then := recorded_input_sha256(record, inp)) is not None and now not in (None, then)
    )
    params = record.get("params")
    job_id = record.get("external_jobid")
    start, end = record.get("starttime"), record.get("endtime")
    return {
        "path": path,
        "kind": "directory" if full.is_dir() else "file",
        "declared": declared,
        "attributed_by": "job record" if record else ("location" if rule else None),
        "rule": rule,
        "sha256": digest,
        "size": sum((workdir / f).stat().st_size for f in files),
        "files": files,
        "deterministic": reason is None,
        "nondeterministic_reason": reason,
        "params": params,
        "params_sha256": digest_of_hashes({"params": json.dumps(params, sort_keys=True)})
        if params is not None
        else None,
        "code_fingerprint": fingerprint_digest_of(params),
        "inputs": inputs,
        "inputs_changed_since_run": changed_since,
        "start": iso(start),
        "end": iso(end),
        "runtime_s": round(end - start, 3) if start is not None and end is not None else None,
        "host": record.get("host"),
        "external_jobid": job_id,
        # Logs are the job's own account of itself (timestamps included): hashed so they cannot be swapped.
        "log": {log: hashes.digest(log) for log in record.get("log") or []},
        # Snakemake names a conda environment's directory by the hash of its file: the prefix names the software.
        "conda_prefix": record.get("conda_prefix"),
        "python": record.get("python"),
    }


RULE_LINE = re.compile(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", re.MULTILINE | re.DOTALL)
SCRIPT_LINE = re.compile(r"^\s+script:\n\s+\"(.+?)\"", re.MULTILINE)


def discover_rules(repo_dir: Path) -> dict[str, dict[str, Any]]:
    """Rule -> script and code fingerprint, read from ``workflow/rules/*.smk`` (for the CLI, outside Snakemake)."""
    found: dict[str, dict[str, Any]] = {}
    for smk in sorted((repo_dir / "workflow" / "rules").glob("*.smk")):
        for match in RULE_LINE.finditer(smk.read_text()):
            script = SCRIPT_LINE.search(match.group(2))
            if script is None:
                continue
            path = (smk.parent / script.group(1)).resolve()
            if path.is_file():
                found[match.group(1)] = {"code": code_fingerprint(path, repo_dir / "src", repo_dir), "params": None}
    return found


def describe_rules(rules: dict[str, dict[str, Any]], used: Iterable[str | None]) -> dict[str, dict[str, Any]]:
    described = {}
    for name in sorted(set(rules) | {r for r in used if r}):
        info = rules.get(name, {})
        kind = kind_of(name)
        params = info.get("params")
        described[name] = {
            "stage": kind.stage,
            "nondeterministic_outputs": dict(kind.nondeterministic),
            "script": (info.get("code") or {}).get("script"),
            "code": info.get("code"),
            "params": params,
            "seed": rule_seed(params),
        }
    return described


def rule_seed(params: Any) -> int | None:
    """The seed a rule's job is given: in its settings (``get_settings("seed", ...)``), or a ``seed`` param."""
    if not isinstance(params, dict):
        return None
    settings = params.get("settings")
    if isinstance(settings, dict) and "seed" in settings:
        return settings["seed"]
    return params.get("seed")


def experiments_of(config: dict[str, Any], outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run of a variant (config ``experiments:``): its variant, seed and overrides, the sha256 of its whole
    config, and the outputs it made itself under results/experiments/<run>/ (its other results are the main run's)."""
    if "experiments" not in config:  # a run from before variants existed
        return {}
    from ..config import config_problems
    from ..experiments.runs import experiment_runs

    described = {}
    for name, run in experiment_runs(config, config_problems).items():
        own = sorted(o["path"] for o in outputs if _is_within(o["path"], f"results/{run.prefix}".rstrip("/")))
        described[name] = {
            "variant": run.variant,
            "seed": run.seed,
            "overrides": dict(run.overrides),
            "config_sha256": digest_of_hashes({"config": json.dumps(run.config, sort_keys=True, default=str)}),
            "outputs": own,
        }
    return described


def build_manifest(
    results_dir: Path,
    config: dict[str, Any],
    workdir: Path,
    *,
    rules: dict[str, dict[str, Any]] | None = None,
    repo_dir: Path | None = None,
    snakefile: str | None = None,
) -> dict[str, Any]:
    """The manifest of the run in ``workdir`` (``results_dir`` relative to it or absolute).

    ``rules`` (rule -> {"code": fingerprint, "params": {name: value}}) comes from the workflow when the
    ``provenance`` rule writes the manifest; without it the rules are read from ``repo_dir``'s rule files.
    """
    workdir = workdir.resolve()
    results_dir = (workdir / results_dir).resolve().relative_to(workdir)
    repo_dir = (repo_dir or Path(__file__).resolve().parents[3]).resolve()
    if rules is None:
        rules = discover_rules(repo_dir)
    hashes = HashCache(workdir)
    records = hashes.records
    declared, undeclared = collect_outputs(workdir, results_dir, records)
    outputs = [describe_output(p, workdir, hashes, records, declared=True) for p in declared]
    owners = {o["path"]: o["rule"] for o in outputs}
    outputs += [
        describe_output(
            p,
            workdir,
            hashes,
            records,
            declared=False,
            rule_hint=attribute_by_location(p, owners),
        )
        for p in undeclared
    ]
    outputs.sort(key=lambda o: o["path"])
    starts = [o["start"] for o in outputs if o["start"]]
    ends = [o["end"] for o in outputs if o["end"]]
    jobs_by_rule: dict[str, int] = defaultdict(int)
    for out in outputs:
        if out["declared"] and out["rule"]:
            jobs_by_rule[out["rule"]] += 1
    return {
        "format": FORMAT,
        "created": datetime.now(tz=UTC).isoformat(),
        "run_directory": str(workdir),
        "results_directory": results_dir.as_posix(),
        "workflow": {"snakefile": snakefile, "snakemake": package_versions(["snakemake"])["snakemake"]},
        "code": code_version(repo_dir),
        "environment": environment(repo_dir),
        "seeds": {"seed": config.get("seed"), "all": seeds_of(config)},
        "config": config,
        "config_sha256": digest_of_hashes({"config": json.dumps(config, sort_keys=True, default=str)}),
        "run": {"start": min(starts) if starts else None, "end": max(ends) if ends else None},
        "experiments": experiments_of(config, outputs),
        "rules": describe_rules(rules, owners.values()),
        "outputs_by_rule": dict(sorted(jobs_by_rule.items())),
        "outputs": outputs,
    }


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n")


def read_manifest(path: Path) -> dict[str, Any]:
    from ..errors import InputError

    try:
        manifest = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise InputError(path, "no provenance manifest (run the workflow or `abacus-repro provenance`)") from err
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a readable provenance manifest: {err}") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("outputs"), list):
        raise InputError(path, "not a provenance manifest: no 'outputs' list")
    return manifest
