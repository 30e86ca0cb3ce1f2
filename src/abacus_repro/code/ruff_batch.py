"""Recipe step 3 with the real ruff: undefined names (F821), then whitespace/layout fixes, in batches; and
ruff's parser as a second opinion on files that the running Python cannot parse (newer syntax).

Each batch of ``ruff_batch_size`` files is written once to a temporary directory; one ruff process checks F821
over the whole batch, a second applies the fixes to the files that survived. Starting ruff once per file would
cost far more than the checking itself. ``--isolated`` keeps any pyproject/ruff.toml around the temporary
directory from changing the decision.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..settings import CodeSettings
from .settings import FIX_PREVIEW, FIX_SELECT

log = logging.getLogger(__name__)
# ruff gives a package's __init__.py module attributes such as __path__; every other name is judged alike.
PACKAGE_INIT = "__init__.py"
# How ruff's JSON output names a syntax error (no rule code in older releases, "invalid-syntax" in 0.17).
SYNTAX_CODES = (None, "invalid-syntax", "E999")
TRAILING_WHITESPACE = re.compile(r"[ \t\f\v]$", re.MULTILINE)
# E303: three blank lines anywhere, or two before an indented line (or a comment, which may precede one).
TOO_MANY_BLANK_LINES = re.compile(r"\n\n\n[\n \t\f#]")
# What ruff prints (and does instead of writing the file) when applying a fix would break the file's syntax.
FIX_BROKE_SYNTAX = "introduced a syntax error"


@dataclass
class RuffResult:
    """Per input file: F821 findings ("line 3: Undefined name `foo`"), and the text after fixes (None when the
    file was not fixed because it has findings)."""

    findings: list[list[str]]
    fixed: list[str | None]
    # Fixes ruff itself undid because they would have broken a file (ruff re-parses every file it fixes and
    # reports "Fix introduced a syntax error" instead of writing it), so a fixed file always still parses.
    fix_reverted: int = 0


def ruff_binary() -> str:
    """The ruff executable that belongs to this Python environment (the pinned ruff package)."""
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if not found:
        raise InputError("ruff", "the ruff executable was not found; install the pinned ruff package (ruff==0.17.5)")
    return found


@functools.cache
def batch_tmpdir() -> str | None:
    """Where batch directories go: /dev/shm (memory) when it is a writable directory, else the default temporary
    directory. Creating and deleting thousands of small files costs about 30 times more CPU on a disk file
    system than in memory; a batch holds at most ruff_batch_size files of at most max_file_bytes each."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def temp_name(index: int, path: str | None) -> str:
    """Where file ``index`` goes in the batch directory: flat, except that a package ``__init__.py`` keeps its
    name (in a directory of its own), because ruff judges ``__path__`` there differently."""
    basename = (path or "").replace("\\", "/").rsplit("/", 1)[-1]
    return f"{index:07d}/{PACKAGE_INIT}" if basename == PACKAGE_INIT else f"f{index:07d}.py"


def _write(directory: Path, name: str, text: str) -> None:
    target = directory / name
    if target.parent != directory:
        target.parent.mkdir()
    # newline="" keeps the file's own line endings, so a fix's diff is the fix alone.
    with open(target, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _run_ruff(args: list[str], cwd: Path) -> str:
    return _run_ruff_full(args, cwd)[0]


def _run_ruff_full(args: list[str], cwd: Path) -> tuple[str, str]:
    """(stdout, stderr) of one ruff process; a failure names the command and ruff's own message."""
    completed = subprocess.run([ruff_binary(), *args], cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"ruff {' '.join(args[:8])} ... failed with exit code {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    return completed.stdout, completed.stderr


def _line_of(finding: str) -> int:
    return int(finding.split(":", 1)[0].split()[1])


def may_need_layout_fix(text: str) -> bool:
    """False only when none of the default fixes can apply: no whitespace before a line end (W291, W293), a
    final newline (W292) and no blank line after it (W391), never three blank lines in a row nor two before an
    indented line or a comment (E303 wants more than two at the top level, more than one inside a block). Most
    files pass, and skipping them saves most of the fix run."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n") or text.endswith("\n\n") or TOO_MANY_BLANK_LINES.search(text):
        return True
    return TRAILING_WHITESPACE.search(text) is not None


def _check_args(settings: CodeSettings) -> list[str]:
    return [
        "check",
        "--isolated",
        "--no-cache",
        "--quiet",
        "--exit-zero",
        "--select",
        "F821",
        "--target-version",
        settings.target_version,
        "--output-format",
        "json",
    ]


def _relative(filename: str, directory: Path) -> str:
    return Path(filename).resolve().relative_to(directory.resolve()).as_posix()


def syntax_errors(texts: Sequence[str], paths: Sequence[str | None], settings: CodeSettings) -> list[str | None]:
    """Per file, ruff's first syntax error at ``target_version`` ("line 3: ..."), or None when ruff's parser
    accepts the file. Errors for syntax newer than the target version count as syntax errors too."""
    errors: list[list[tuple[int, str]]] = [[] for _ in texts]
    for indices in _batches(len(texts), settings.ruff_batch_size):
        with tempfile.TemporaryDirectory(prefix="abacus-ruff-", dir=batch_tmpdir()) as tmp:
            directory = Path(tmp)
            names = {index: temp_name(index, paths[index]) for index in indices}
            for index, name in names.items():
                _write(directory, name, texts[index])
            by_name = {name: index for index, name in names.items()}
            out = _run_ruff([*_check_args(settings), *names.values()], directory)
            for item in json.loads(out or "[]"):
                if item.get("code") in SYNTAX_CODES:
                    row = int(item["location"]["row"])
                    errors[by_name[_relative(item["filename"], directory)]].append((row, item["message"]))
    return [f"line {min(found)[0]}: {min(found)[1]}" if found else None for found in errors]


def check_and_fix(
    texts: Sequence[str],
    paths: Sequence[str | None],
    judge: Sequence[bool],
    settings: CodeSettings,
    fix_select: Sequence[str] = FIX_SELECT,
) -> RuffResult:
    """F821 on the files where ``judge`` is true; then the ``fix_select`` fixes on every file without findings."""
    findings: list[list[str]] = [[] for _ in texts]
    fixed: list[str | None] = [None for _ in texts]
    reverted = 0
    check_args = _check_args(settings)
    fix_args = [
        "check",
        "--isolated",
        "--no-cache",
        "--quiet",
        "--exit-zero",
        "--fix-only",
        "--select",
        ",".join(fix_select),
        "--target-version",
        settings.target_version,
    ]
    if FIX_PREVIEW:
        fix_args.append("--preview")
    # may_need_layout_fix is exact for the recipe's fixes (FIX_SELECT) only.
    prefilter = sorted(fix_select) == sorted(FIX_SELECT)
    for indices in _batches(len(texts), settings.ruff_batch_size):
        with tempfile.TemporaryDirectory(prefix="abacus-ruff-", dir=batch_tmpdir()) as tmp:
            directory = Path(tmp)
            names = {index: temp_name(index, paths[index]) for index in indices}
            for index, name in names.items():
                _write(directory, name, texts[index])
            to_judge = [names[i] for i in indices if judge[i]]
            if to_judge:
                by_name = {name: index for index, name in names.items()}
                out = _run_ruff([*check_args, *to_judge], directory)
                for item in json.loads(out or "[]"):
                    if item.get("code") == "F821":
                        index = by_name[_relative(item["filename"], directory)]
                        findings[index].append(f"line {item['location']['row']}: {item['message']}")
            survivors = [i for i in indices if not findings[i]]
            # Only files that can need a fix go through the fix run (and are read back); the others are final.
            to_fix = [i for i in survivors if fix_select and (not prefilter or may_need_layout_fix(texts[i]))]
            if to_fix:
                _out, err = _run_ruff_full([*fix_args, *(names[i] for i in to_fix)], directory)
                reverted += err.count(FIX_BROKE_SYNTAX)
            for index in survivors:
                fixed[index] = texts[index]
            for index in to_fix:
                with open(directory / names[index], encoding="utf-8", newline="") as handle:
                    fixed[index] = handle.read()
    for per_file in findings:
        per_file.sort(key=_line_of)
    return RuffResult(findings, fixed, reverted)
