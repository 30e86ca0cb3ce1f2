"""Check a run against its provenance manifest: what drifted, and why.

For each output in the manifest the audit recomputes its sha256 and, when the bytes differ, asks the job's own
record (``logs/jobs/``, abacus_repro/job_record.py) whether the workflow re-ran it since the manifest was written:

- not re-run, or no record: the file changed outside the workflow -> **modified** (a failure: tampering,
  corruption, a hand edit);
- re-run with a different code fingerprint, parameters or inputs -> **rerun** with those named (explained);
- re-run with the same code, parameters and inputs, from a rule marked non-deterministic for that output
  -> **nondeterministic** (expected, with the reason);
- re-run with all of that unchanged from a deterministic rule -> **irreproducible** (a failure).

Outputs whose bytes still match may be **stale**: their rule's code or an input changed since they were made, so
Snakemake would re-run them. ``rerun_data_rules`` re-executes the deterministic data rules into a scratch
directory and compares the bytes with the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .code import changed_files, code_fingerprint, code_version, fingerprint_digest_of
from .hashing import output_digest
from .manifest import HashCache, collect_outputs, installed_distributions
from .rules import is_data_rule, nondeterminism_reason

OK, STALE, RERUN, NONDETERMINISTIC = "ok", "stale", "rerun", "nondeterministic"
MODIFIED, MISSING, IRREPRODUCIBLE, UNRECORDED = "modified", "missing", "irreproducible", "unrecorded"
REPRODUCED, NOT_REPRODUCED, NOT_PRODUCED = "reproduced", "not-reproduced", "not-produced"
FAILURES = {MODIFIED, MISSING, IRREPRODUCIBLE, NOT_REPRODUCED, NOT_PRODUCED}
# Explained differences: the manifest is out of date, the outputs are not wrong. --strict fails on them too.
DRIFT = {STALE, RERUN, UNRECORDED}

MAX_LISTED = 6


@dataclass
class Finding:
    path: str
    rule: str | None
    status: str
    reasons: list[str] = field(default_factory=list)

    @property
    def failure(self) -> bool:
        return self.status in FAILURES


@dataclass
class AuditResult:
    findings: list[Finding]
    notes: list[str]
    scratch: str | None = None

    def count(self, *statuses: str) -> int:
        return sum(1 for f in self.findings if f.status in statuses)

    def exit_code(self, strict: bool = False) -> int:
        failing = FAILURES | DRIFT if strict else FAILURES
        return 1 if any(f.status in failing for f in self.findings) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "scratch": self.scratch,
            "findings": [asdict(f) | {"failure": f.failure} for f in self.findings],
        }


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _same_time(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < 1e-3


class CodeState:
    """Current code fingerprints of the manifest's rules, computed once each."""

    def __init__(self, manifest: dict[str, Any], repo_dir: Path):
        self.rules = manifest.get("rules", {})
        self.repo_dir = repo_dir
        self._now: dict[str, dict[str, Any] | None] = {}

    def now(self, rule: str | None) -> dict[str, Any] | None:
        if not rule or rule not in self.rules:
            return None
        if rule not in self._now:
            script = (self.rules[rule].get("code") or {}).get("script")
            path = self.repo_dir / script if script else None
            self._now[rule] = (
                code_fingerprint(path, self.repo_dir / "src", self.repo_dir)
                if path is not None and path.is_file()
                else None
            )
        return self._now[rule]

    def then(self, rule: str | None) -> dict[str, Any] | None:
        return (self.rules.get(rule or "") or {}).get("code")

    def changed_since_manifest(self, rule: str | None) -> list[str] | None:
        """Files of the rule's code that differ from the manifest's; None when unknown."""
        then, now = self.then(rule), self.now(rule)
        if not then or not now:
            return None
        return changed_files(then.get("files", {}), now.get("files", {}))


def _params_diff(old: dict[str, Any] | list | None, new: dict[str, Any] | list | None) -> list[str]:
    """Each parameter whose value differs, by name; the code fingerprint is reported as code, not here."""
    # Manifests written before job records kept params as an unnamed list: compare those by position.
    old, new = ({str(i): v for i, v in enumerate(x)} if isinstance(x, list) else x or {} for x in (old, new))

    def shorten(value: Any) -> str:
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= 120 else text[:117] + "..."

    return [
        f"{name}: was {shorten(old.get(name))}, now {shorten(new.get(name))}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name) and not fingerprint_digest_of({name: old.get(name) or new.get(name)})
    ]


def _files_diff(then: dict[str, str], now: dict[str, str]) -> list[str]:
    return changed_files(then, now)


def _explain_rerun(
    entry: dict[str, Any], record: dict[str, Any], hashes: HashCache, code: CodeState, package_changes: list[str]
) -> list[str]:
    reasons = []
    new_fingerprint = fingerprint_digest_of(record.get("params"))
    if new_fingerprint != entry.get("code_fingerprint"):
        files = code.changed_since_manifest(entry.get("rule"))
        reasons.append("changed code" + (f": {_listed(files)}" if files else ""))
    params = _params_diff(entry.get("params"), record.get("params"))
    if params:
        reasons.append("changed params: " + "; ".join(params[:4]))
    then_inputs = entry.get("inputs", {})
    now_inputs = sorted(record.get("input") or [])
    if sorted(then_inputs) != now_inputs:
        reasons.append("changed set of inputs: " + _listed(sorted(set(then_inputs) ^ set(now_inputs))))
    changed = [inp for inp in now_inputs if inp in then_inputs and hashes.digest(inp) != then_inputs[inp]]
    if changed:
        reasons.append("changed inputs: " + _listed(changed))
    if package_changes:
        reasons.append("changed packages: " + _listed(package_changes))
    return reasons


def _package_changes(manifest: dict[str, Any]) -> list[str]:
    then = manifest.get("environment", {}).get("all_packages") or {}
    if not then:
        return []
    now = installed_distributions()
    return [
        f"{name} {then.get(name)} -> {now.get(name)}"
        for name in sorted(set(then) | set(now))
        if then.get(name) != now.get(name)
    ]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}


def config_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Keys the current configuration sets to another value than the run had (keys it omits keep defaults)."""
    old, new = _flatten(then), _flatten(now)
    return [
        f"{key}: {old.get(key)!r} -> {value!r}"
        for key, value in sorted(new.items())
        if key in old and old[key] != value or key not in old
    ]


def audit_output(entry: dict[str, Any], hashes: HashCache, code: CodeState, package_changes: list[str]) -> Finding:
    path, rule = entry["path"], entry.get("rule")
    workdir = hashes.workdir
    full = workdir / path
    found = hashes.tree(path)
    if found is None:
        return Finding(path, rule, MISSING, ["listed in the manifest, absent from the run directory"])
    digest, files = found
    if digest == entry.get("sha256"):
        return _staleness(entry, hashes, code)
    reasons = []
    if entry.get("kind") == "directory":
        reasons.append("files differ: " + _listed(_files_diff(entry.get("files", {}), files)))
    record = hashes.records.of(path) if entry.get("declared", True) else None
    then_end = _epoch(entry.get("end"))
    if record is None or _same_time(record.get("endtime"), then_end):
        when = datetime.fromtimestamp(full.stat().st_mtime, tz=UTC).isoformat()
        job = f"the job that made it ended {entry.get('end')}" if entry.get("end") else "no job record"
        reasons.insert(
            0, f"changed outside the workflow: Snakemake has not re-run it ({job}); file last modified {when}"
        )
        return Finding(path, rule, MODIFIED, reasons)
    ended = datetime.fromtimestamp(record["endtime"], tz=UTC).isoformat() if record.get("endtime") else "?"
    explained = _explain_rerun(entry, record, hashes, code, package_changes)
    if explained:
        return Finding(path, rule, RERUN, [f"re-run by Snakemake (ended {ended})", *explained, *reasons])
    why = nondeterminism_reason(rule, path)
    if why:
        return Finding(
            path,
            rule,
            NONDETERMINISTIC,
            [f"re-run (ended {ended}) with the same code, params and inputs; this output {why}", *reasons],
        )
    return Finding(
        path,
        rule,
        IRREPRODUCIBLE,
        [
            (
                f"re-run (ended {ended}) with the same code, params, inputs and packages gave different bytes, "
                f"and rule {rule} is marked deterministic"
            ),
            *reasons,
        ],
    )


def _staleness(entry: dict[str, Any], hashes: HashCache, code: CodeState) -> Finding:
    path, rule = entry["path"], entry.get("rule")
    reasons = []
    files = code.changed_since_manifest(rule)
    if files:
        reasons.append(f"code of rule {rule} changed since: {_listed(files)}")
    changed = []
    for inp, then in (entry.get("inputs") or {}).items():
        now = hashes.digest(inp)
        if then is not None and now != then:
            changed.append(inp if now is not None else f"{inp} (gone)")
    if changed:
        reasons.append("inputs changed since: " + _listed(changed))
    if entry.get("inputs_changed_since_run"):
        reasons.append(
            "inputs had already changed when the manifest was written: " + _listed(entry["inputs_changed_since_run"])
        )
    return Finding(path, rule, STALE if reasons else OK, reasons)


def audit_run(
    workdir: Path,
    manifest: dict[str, Any],
    *,
    repo_dir: Path | None = None,
    current_config: dict[str, Any] | None = None,
) -> AuditResult:
    """Every output of the manifest against the files in ``workdir`` (see the module docstring)."""
    workdir = Path(workdir).resolve()
    repo_dir = Path(repo_dir or Path(__file__).resolve().parents[3]).resolve()
    code = CodeState(manifest, repo_dir)
    packages = _package_changes(manifest)
    notes = []
    then_code, now_code = manifest.get("code", {}), code_version(repo_dir)
    if then_code.get("git_commit") != now_code.get("git_commit"):
        notes.append(f"git commit changed: {then_code.get('git_commit')} -> {now_code.get('git_commit')}")
    if now_code.get("dirty"):
        notes.append("the checkout has uncommitted changes: " + _listed(now_code["dirty_files"]))
    changed_rules = {r: f for r in code.rules if (f := code.changed_since_manifest(r))}
    for rule, files in sorted(changed_rules.items()):
        notes.append(f"code of rule {rule} changed since the manifest: {_listed(files)}")
    if packages:
        notes.append("installed packages differ from the run's: " + _listed(packages))
    if current_config is not None:
        changes = config_changes(manifest.get("config", {}), current_config)
        if changes:
            notes.append("configuration differs from the run's: " + _listed(changes))

    hashes = HashCache(workdir)
    findings = [audit_output(entry, hashes, code, packages) for entry in manifest["outputs"]]
    listed = {entry["path"] for entry in manifest["outputs"]}
    declared, undeclared = collect_outputs(workdir, Path(manifest.get("results_directory", "results")), hashes.records)
    for path in declared + undeclared:
        if path not in listed:
            record = hashes.records.of(path) or {}
            findings.append(
                Finding(
                    path, record.get("rule"), UNRECORDED, ["not in the manifest: made after it was written, or by hand"]
                )
            )
    findings.sort(key=lambda f: f.path)
    return AuditResult(findings, notes)


# --- two runs against each other ------------------------------------------------------------------------------

SAME, DIFFERENT = "same", "different"


def compare_manifests(ours: dict[str, Any], theirs: dict[str, Any]) -> AuditResult:
    """Output by output, two runs' hashes: equal, explained (other code, params or inputs), expected
    (non-deterministic output) or irreproducible (a deterministic output differs with all of that equal)."""
    mine = {o["path"]: o for o in ours["outputs"] if o.get("declared", True)}
    other = {o["path"]: o for o in theirs["outputs"] if o.get("declared", True)}
    notes = [f"comparing {ours.get('run_directory')} with {theirs.get('run_directory')}"]
    env_a, env_b = ours.get("environment", {}), theirs.get("environment", {})
    packages = [
        f"{n} {env_b.get('all_packages', {}).get(n)} -> {v}"
        for n, v in env_a.get("all_packages", {}).items()
        if env_b.get("all_packages") and env_b["all_packages"].get(n) != v
    ]
    if packages:
        notes.append("packages differ: " + _listed(packages))
    config = config_changes(theirs.get("config", {}), ours.get("config", {}))
    if config:
        notes.append("configuration differs: " + _listed(config))
    findings = []
    for path in sorted(set(mine) | set(other)):
        a, b = mine.get(path), other.get(path)
        if a is None or b is None:
            findings.append(
                Finding(path, (a or b).get("rule"), UNRECORDED, [f"only in {'this' if b is None else 'the other'} run"])
            )
            continue
        if a["sha256"] == b["sha256"]:
            findings.append(Finding(path, a.get("rule"), SAME))
            continue
        reasons = []
        if a.get("code_fingerprint") != b.get("code_fingerprint"):
            reasons.append("different code")
        params = _params_diff(b.get("params"), a.get("params"))
        if params:
            reasons.append("different params: " + "; ".join(params[:4]))
        inputs = sorted(
            i
            for i in set(a.get("inputs", {})) | set(b.get("inputs", {}))
            if a.get("inputs", {}).get(i) != b.get("inputs", {}).get(i)
        )
        if inputs:
            reasons.append("different inputs: " + _listed(inputs))
        if packages:  # any rule may depend on them (numerics, and ingest_code reads the installation itself)
            reasons.append("different packages")
        if reasons:
            findings.append(Finding(path, a.get("rule"), RERUN, reasons))
        elif not a.get("deterministic", True):
            findings.append(Finding(path, a.get("rule"), NONDETERMINISTIC, [a.get("nondeterministic_reason") or ""]))
        else:
            findings.append(
                Finding(
                    path, a.get("rule"), IRREPRODUCIBLE, ["same code, params, inputs and packages, different bytes"]
                )
            )
    return AuditResult(findings, notes)


# --- re-execution in a scratch directory -------------------------------------------------------------------


def rerun_targets(manifest: dict[str, Any], rules: list[str] | None = None) -> list[dict[str, Any]]:
    """Declared, deterministic outputs of the chosen rules (default: every data rule)."""
    chosen = set(rules) if rules else None
    return [
        o
        for o in manifest["outputs"]
        if o.get("declared", True)
        and o.get("rule")
        and o.get("deterministic", True)
        and (o["rule"] in chosen if chosen is not None else is_data_rule(o["rule"]))
    ]


def raw_inputs(manifest: dict[str, Any]) -> list[str]:
    """Inputs no output of the run produced: the data the workflow starts from."""
    produced = {o["path"] for o in manifest["outputs"]}
    found = set()
    for out in manifest["outputs"]:
        for inp in out.get("inputs", {}):
            if inp not in produced:
                found.add(inp)
    return sorted(found)


def prepare_scratch(scratch: Path, workdir: Path, manifest: dict[str, Any]) -> Path:
    """A run directory that sees the original's raw inputs under the same relative paths, and nothing else.

    Relative raw inputs are reached through symlinks of their top-level directory, so paths recorded in data
    (and parameters) stay identical; ``../x`` inputs through a sibling link next to the scratch run directory.
    """
    run_dir = scratch / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = manifest.get("config", {})
    candidates = set(raw_inputs(manifest))
    for value in _flatten(config).values():  # directories scanned at parse time (docs samples) are inputs too
        if isinstance(value, str) and value and not os.path.isabs(value) and "{" not in value:
            candidates.add(value)
    for inp in sorted(candidates):
        if os.path.isabs(inp):
            continue
        parts = Path(inp).parts
        if not parts:
            continue
        if parts[0] == "..":
            if len(parts) < 2:
                continue
            link, target = scratch / parts[1], (workdir.parent / parts[1])
        else:
            if parts[0] in {"results", "logs", "benchmarks", ".snakemake"}:
                continue
            link, target = run_dir / parts[0], workdir / parts[0]
        if target.exists() and not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
    return run_dir


def link_upstream_outputs(run_dir: Path, workdir: Path, manifest: dict[str, Any], rules: set[str]) -> list[str]:
    """Make the run's own outputs of other rules visible in the scratch directory, where the chosen rules read them.

    The chosen rules are then re-executed from exactly the inputs they had (and only they run: Snakemake is
    given ``--allowed-rules``), so ``--rules train`` checks training without redoing the data stage.
    """
    producer = {o["path"]: o.get("rule") for o in manifest["outputs"]}
    linked = []
    for out in manifest["outputs"]:
        if out.get("rule") not in rules:
            continue
        for inp in out.get("inputs", {}):
            if producer.get(inp, "") in rules or inp not in producer or os.path.isabs(inp):
                continue
            link, target = run_dir / inp, workdir / inp
            if target.exists() and not os.path.lexists(link):
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target.resolve(), target_is_directory=target.is_dir())
                linked.append(inp)
    return sorted(linked)


def _rerun_environment(workdir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """This interpreter's Snakemake first on PATH, and the shared data where the run found it."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    shared = manifest.get("environment", {}).get("ABACUS_SHARED_DATA") or manifest.get("config", {}).get("shared_data")
    if shared:
        env["ABACUS_SHARED_DATA"] = str((workdir / shared).resolve())
    return env


def _compare_rerun(entry: dict[str, Any], run_dir: Path) -> Finding:
    """One re-executed output against the manifest's bytes."""
    full = run_dir / entry["path"]
    if not full.exists():
        return Finding(entry["path"], entry["rule"], NOT_PRODUCED, ["the re-run did not produce it"])
    digest, files = output_digest(full, run_dir)
    if digest == entry.get("sha256"):
        return Finding(entry["path"], entry["rule"], REPRODUCED, [])
    detail = (
        "files differ: " + _listed(_files_diff(entry.get("files", {}), files))
        if entry.get("kind") == "directory"
        else f"sha256 {entry.get('sha256')} -> {digest}"
    )
    return Finding(
        entry["path"],
        entry["rule"],
        NOT_REPRODUCED,
        ["re-executed with the run's configuration, different bytes", detail],
    )


def rerun_data_rules(
    workdir: Path,
    manifest: dict[str, Any],
    *,
    scratch: Path | None = None,
    snakefile: Path | None = None,
    rules: list[str] | None = None,
    cores: int = 2,
    keep: bool = False,
    timeout: float | None = None,
) -> AuditResult:
    """Re-execute the chosen rules (default: every data rule) into ``scratch`` and compare bytes.

    Same configuration (the manifest's, defaults filled), same interpreter and packages. The data rules run from
    the run's raw inputs; a rule whose inputs come from rules not chosen reads the run's own files (linked).
    """
    workdir = Path(workdir).resolve()
    targets = rerun_targets(manifest, rules)
    if not targets:
        return AuditResult([], ["no deterministic outputs of the chosen rules in the manifest"])
    scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="abacus-audit-"))
    scratch.mkdir(parents=True, exist_ok=True)
    run_dir = prepare_scratch(scratch, workdir, manifest)
    chosen = {t["rule"] for t in targets}
    linked = link_upstream_outputs(run_dir, workdir, manifest, chosen)
    config_path = scratch / "config.json"
    config_path.write_text(json.dumps(manifest.get("config", {}), indent=1, default=str))
    repo_dir = Path(__file__).resolve().parents[3]
    snakefile = Path(snakefile or manifest.get("workflow", {}).get("snakefile") or repo_dir / "workflow/Snakefile")
    env = _rerun_environment(workdir, manifest)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(run_dir),
        "--configfile",
        str(config_path),
        "--cores",
        str(cores),
        "--workflow-profile",
        "none",
        "--allowed-rules",
        *sorted(chosen),
        "--",
        *sorted({t["path"] for t in targets}),
    ]
    log_path = scratch / "snakemake.log"
    with log_path.open("w") as log:
        proc = subprocess.run(
            cmd, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    notes = [
        f"re-ran {len(targets)} outputs of {len(chosen)} rules in {run_dir}"
        + (f", reading {len(linked)} outputs of other rules from the run" if linked else "")
    ]
    if proc.returncode != 0:
        notes.append(f"snakemake failed (exit {proc.returncode}); see {log_path}")
    findings = [_compare_rerun(entry, run_dir) for entry in targets]
    result = AuditResult(findings, notes, scratch=str(scratch))
    if not keep and proc.returncode == 0 and result.exit_code() == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        result.scratch = None
    return result


def format_result(result: AuditResult, verbose: bool = False) -> str:
    lines = [f"note: {note}" for note in result.notes]
    for finding in result.findings:
        if finding.status in {OK, REPRODUCED, SAME} and not verbose:
            continue
        mark = "FAIL" if finding.failure else "    "
        lines.append(f"{mark} {finding.status:<15} {finding.path}  [{finding.rule or '-'}]")
        lines += [f"       - {reason}" for reason in finding.reasons]
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.status] = counts.get(finding.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to check"
    lines.append(f"{len(result.findings)} outputs: {summary}")
    if result.scratch:
        lines.append(f"scratch directory kept: {result.scratch}")
    return "\n".join(lines)
