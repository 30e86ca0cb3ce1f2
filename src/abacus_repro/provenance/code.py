"""Which code produced an output: a content fingerprint per rule, and the git state of the checkout.

Snakemake notices a changed ``script:`` only by its modification time, and never notices a change in the
library the thin script calls. The fingerprint closes both gaps: it hashes the rule's script together with
every module of this package the script imports (followed transitively, read statically with ``ast`` so
nothing is executed) and the data files that ship next to those modules (rubrics, task YAMLs). The workflow
passes it to each rule as a parameter, so Snakemake's params trigger re-runs a rule exactly when its code
changed, and a touched but unchanged file changes nothing.
"""

from __future__ import annotations

import ast
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..imports import absolute_module, import_statements, package_of
from .hashing import digest_of_hashes, sha256_file

PACKAGE = "abacus_repro"
FINGERPRINT_PREFIX = "code-sha256:"


def _module_file(source_root: Path, module: str) -> Path | None:
    """The file that defines ``module`` under ``source_root`` (a module or a package's __init__)."""
    base = source_root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, module: str | None) -> frozenset[str]:
    """Every module name ``path`` may import, anywhere in the file (function-level imports included).

    ``from pkg import name`` yields both ``pkg`` and ``pkg.name``: the name may be a submodule, and a candidate
    that is not a module is dropped later when no file defines it.
    """
    stat = path.stat()
    return _imported_modules(path, module, (stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=4096)
def _imported_modules(path: Path, module: str | None, stamp: tuple) -> frozenset[str]:
    # Every rule's closure shares most modules; parsing each once keeps the workflow's start fast.
    tree = ast.parse(path.read_bytes(), filename=str(path))
    # A relative import in a top-level script (module None) cannot name the package.
    package = package_of(module, path.name == "__init__.py") if module is not None else ""
    found: set[str] = set()
    for statement in import_statements(tree):
        if statement.kind == "import":
            found.add(statement.module)
            continue
        base = absolute_module(statement.module, statement.level, package)
        if base is None:
            continue
        found.add(base)
        found.update(f"{base}.{name}" for name in statement.names if name != "*")
    return frozenset(found)


def _with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c``: all of them are code that ran."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@lru_cache(maxsize=512)
def _package_data_files(package_dir: Path) -> tuple[Path, ...]:
    """Non-Python files that ship inside a package directory (not in its subpackages): rubrics, task YAMLs."""
    found = []
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
            continue
        owner = path.parent
        while owner != package_dir and not (owner / "__init__.py").is_file():
            owner = owner.parent
        if owner == package_dir:
            found.append(path)
    return tuple(found)


def module_closure(script: Path, source_root: Path, package: str = PACKAGE) -> list[Path]:
    """The script plus every file of ``package`` it can reach through imports, sorted."""
    seen_modules: set[str] = set()
    files: set[Path] = {script.resolve()}
    queue: list[tuple[Path, str | None]] = [(script, None)]
    while queue:
        path, module = queue.pop()
        for name in imported_modules(path, module):
            if name != package and not name.startswith(package + "."):
                continue
            for candidate in _with_parents(name):
                if candidate in seen_modules:
                    continue
                module_path = _module_file(source_root, candidate)
                if module_path is None:
                    continue  # ``from pkg import function``: the name is not a module
                seen_modules.add(candidate)
                files.add(module_path.resolve())
                if module_path.name == "__init__.py":
                    files.update(p.resolve() for p in _package_data_files(module_path.parent))
                queue.append((module_path, candidate))
    return sorted(files)


def _display_path(path: Path, anchors: list[Path]) -> str:
    for anchor in anchors:
        try:
            return path.relative_to(anchor).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def code_fingerprint(script: Path | str, source_root: Path | str, repo_root: Path | str) -> dict[str, Any]:
    """``{"script", "files": {path: sha256}, "digest": "code-sha256:..."}`` for one rule's script."""
    script, source_root, repo_root = Path(script).resolve(), Path(source_root).resolve(), Path(repo_root).resolve()
    files = module_closure(script, source_root)
    # Paths are named relative to the checkout (workflow/scripts/x.py, src/abacus_repro/io.py) so the same code gives
    # the same fingerprint wherever the repository lives (a cluster node, a conda env's editable install).
    hashes = {_display_path(f, [repo_root, source_root.parent]): sha256_file(f) for f in files}
    return {
        "script": _display_path(script, [repo_root]),
        "files": dict(sorted(hashes.items())),
        "digest": FINGERPRINT_PREFIX + digest_of_hashes(hashes),
    }


def fingerprint_digest_of(params: dict[str, Any] | None) -> str | None:
    """The code fingerprint among a job's recorded params (the rule's ``code`` parameter), if any."""
    for value in (params or {}).values():
        if isinstance(value, str) and value.startswith(FINGERPRINT_PREFIX):
            return value
    return None


def changed_files(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two fingerprints' file maps."""
    return sorted(path for path in set(old) | set(new) if old.get(path) != new.get(path))


def _git(repo_dir: Path, *args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def code_version(repo_dir: Path | str) -> dict[str, Any]:
    """Git commit of the checkout and whether it differs from that commit (tracked edits or new code files).

    ``dirty_files`` names what differs, so an auditor sees whether the difference could matter. A directory
    outside any git checkout gives ``git_commit: None`` and ``dirty: None`` (unknown, not clean).
    """
    repo_dir = Path(repo_dir)
    top = _git(repo_dir, "rev-parse", "--show-toplevel")
    if top is None:
        return {"git_commit": None, "dirty": None, "dirty_files": [], "repository": None}
    commit = _git(repo_dir, "rev-parse", "HEAD")
    status = (
        _git(
            Path(top),
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            "src",
            "workflow",
            "config",
            "profiles",
            "pyproject.toml",
            "requirements.lock",
            strip=False,
        )
        or ""
    )
    dirty_files = sorted(line[3:] for line in status.splitlines() if line.strip())
    return {"git_commit": commit, "dirty": bool(dirty_files), "dirty_files": dirty_files, "repository": top}
