"""Raw Python code becomes document shards, one repository per shard assignment (recipe: code data).

Three sources, chosen by ``code.source``:

* ``python_installation`` (the tiny default): the running interpreter's standard library plus the packages that
  ``code.packages`` names from the venv's site-packages (a named list, so that installing another dependency never
  changes the training data). Each top-level package directory is one repository ("stdlib/json",
  "site-packages/requests"); the standard library's loose top-level modules form one more ("stdlib/_modules").
* ``repos_dir``: ``code.path`` is a directory whose subdirectories are repositories.
* ``stack_dump``: ``code.path`` is a JSONL(.gz)/Parquet file, or a directory of them, in The Stack's field layout.
  Its licence fields travel in each file's meta (:func:`stack_licenses`); the filesystem sources read no licence
  (a LICENSE file's text is not classified), so their files count as licence "unknown" (code/licenses.py).

Nothing is judged here: a file that cannot be used (not UTF-8, NUL bytes, empty, too large, unreadable) is still
emitted, with ``meta["ingest_error"]`` naming the reason, so that the cleaning funnel counts it instead of the
file vanishing silently. What the walk does not read is counted in the stats' ``skipped`` by reason
(:data:`SKIP_REASONS`): symlinks (never followed: no escapes, no loops), directories that cannot be listed,
files at the top of a repos_dir that belong to no repository, and sockets/FIFOs/devices. Hidden, VCS, cache and
virtual-environment directories are left out by design and not counted. Markdown/reST files found in the sampled
repositories go to a separate docs output.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import hashlib
import io
import json
import logging
import os
import random
import sysconfig
import tokenize
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..io import content_id, make_doc, write_docs, write_json
from ..rules import RulePaths
from ..settings import CodeSettings, Settings, ShardsSettings

log = logging.getLogger(__name__)

# Directory names that never hold a repository's own source.
SKIPPED_DIR_NAMES = {"__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", "node_modules"}
SKIPPED_DIR_SUFFIXES = (".dist-info", ".egg-info")
DOC_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".rst": "rst"}
DOC_DIR_NAMES = {"doc", "docs"}
LOOSE_MODULES = "_modules"
NUL = b"\x00"
SKIP_REASONS = ("not_regular_file", "symlink", "top_level_file", "unreadable_dir")


@dataclass(frozen=True)
class Repository:
    """A repository on disk: ``entries`` (relative to ``base``) are walked; paths stay relative to ``base``.

    For a package in site-packages, ``base`` is site-packages itself and the entry is the package directory, so a
    file's path ("json/decoder.py") is also its import path, which dependency ordering relies on.
    """

    name: str
    base: Path
    entries: tuple[str, ...] = (".",)
    recursive: bool = True
    origin: str = "repos_dir"


@dataclass
class SourceFile:
    """One file as read from its source, before any judgement."""

    repo: str
    path: str
    raw: bytes | None
    text: str = ""
    error: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- reading files


def decode_source(
    raw: bytes | None, max_file_bytes: int, size: int | None = None, python_source: bool = False
) -> tuple[str, str | None, str]:
    """Decode a file's bytes; returns (text, error reason or None, detail).

    The reasons are the cleaner's first funnel step: ``too_large``, ``empty``, ``nul_bytes``, ``non_utf8``.
    A UTF-8 byte-order mark is dropped, because ``ast.parse`` rejects it inside a str. A Python file (when
    ``python_source``) is decoded as Python itself reads it: in the encoding its PEP 263 ``coding:`` line
    declares (much Python 2 code is Latin-1), else as UTF-8; only undeclared or wrongly declared bytes are
    ``non_utf8``.
    """
    size = len(raw) if raw is not None else size
    if size is not None and size > max_file_bytes:
        return "", "too_large", f"{size} bytes > max_file_bytes {max_file_bytes}"
    if raw is None:
        return "", "unreadable", "no content"
    if not raw.strip():
        return "", "empty", f"{len(raw)} bytes, all whitespace" if raw else "0 bytes"
    if NUL in raw:
        return "", "nul_bytes", f"NUL byte at offset {raw.index(NUL)}"
    encoding = declared_encoding(raw) if python_source else None
    if encoding:
        try:
            return raw.decode(encoding), None, ""
        except (UnicodeDecodeError, LookupError) as err:
            return "", "non_utf8", f"not valid {encoding} as its coding line declares ({err})"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return "", "non_utf8", f"invalid UTF-8 at byte {err.start}"
    return text, None, ""


def declared_encoding(raw: bytes) -> str | None:
    """The encoding a PEP 263 coding line in the first two lines declares, when it is not UTF-8; else None
    (also for an unknown codec, which Python itself would refuse: the UTF-8 check then decides)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    return None if name in ("utf-8", "utf-8-sig") else name


def read_source_file(
    path: Path, max_file_bytes: int, python_source: bool | None = None
) -> tuple[bytes | None, str, str | None, str]:
    """Read one file from disk: (raw bytes or None, text, error reason or None, detail).

    The size is checked before reading, so a huge file costs nothing. ``python_source`` (default: the name
    ends in .py) honours a PEP 263 coding line.
    """
    if python_source is None:
        python_source = path.suffix == ".py"
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            text, error, detail = decode_source(None, max_file_bytes, size=size)
            return None, text, error, detail
        raw = path.read_bytes()
    except OSError as err:
        return None, "", "unreadable", f"{type(err).__name__}: {err.strerror or err}"
    text, error, detail = decode_source(raw, max_file_bytes, python_source=python_source)
    return raw, text, error, detail


# ------------------------------------------------------------------------------------------- finding repositories


def _skipped_dir(name: str) -> bool:
    return name in SKIPPED_DIR_NAMES or name.endswith(SKIPPED_DIR_SUFFIXES) or name.startswith(".")


def count_skip(skipped: Counter[str] | None, reason: str, path: str | Path, why: str = "") -> None:
    """Count one entry the walk does not read (when counting: the walk of the sampled repositories)."""
    if skipped is None:
        return
    skipped[reason] += 1
    if reason == "unreadable_dir":
        log.warning("%s: skipped, %s", path, why)
    else:
        log.debug("%s: skipped (%s)", path, reason)


def walk_files(root: Path, skipped: Counter[str] | None = None) -> Iterator[Path]:
    """Every regular file under ``root`` in sorted order; symlinks are not followed (no escapes, no loops).

    With ``skipped``, what is passed over is counted there by reason (``symlink``, ``unreadable_dir``,
    ``not_regular_file``); os.walk itself would drop a directory it cannot list without a word.
    """

    def unreadable(err: OSError) -> None:
        count_skip(skipped, "unreadable_dir", err.filename, f"cannot list the directory ({err.strerror})")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        walked = []
        for name in sorted(d for d in dirnames if not _skipped_dir(d)):
            if os.path.islink(os.path.join(dirpath, name)):  # os.walk would not enter it: counted here
                count_skip(skipped, "symlink", os.path.join(dirpath, name))
            else:
                walked.append(name)
        dirnames[:] = walked
        for name in sorted(filenames):
            candidate = Path(dirpath) / name
            if candidate.is_symlink():
                count_skip(skipped, "symlink", candidate)
            elif candidate.is_file():
                yield candidate
            else:
                count_skip(skipped, "not_regular_file", candidate)


def _has_python(root: Path) -> bool:
    return any(p.suffix == ".py" for p in walk_files(root))


def is_doc_file(rel_path: str) -> str | None:
    """The doc format of a repository file, or None: Markdown/reST anywhere, READMEs, text files under docs/."""
    parts = rel_path.split("/")
    name = parts[-1]
    suffix = Path(name).suffix.lower()
    if suffix in DOC_SUFFIXES:
        return DOC_SUFFIXES[suffix]
    if name.upper().startswith("README") and suffix in ("", ".txt"):
        return "text"
    if suffix == ".txt" and any(p.lower() in DOC_DIR_NAMES for p in parts[:-1]):
        return "text"
    return None


def list_repository_files(repo: Repository, skipped: Counter[str] | None = None) -> tuple[list[str], list[str]]:
    """(python files, doc files) of a repository, as sorted POSIX paths relative to ``repo.base``; what the walk
    passes over is counted in ``skipped`` (see :func:`walk_files`)."""
    python_files: list[str] = []
    doc_files: list[str] = []
    for entry in repo.entries:
        start = repo.base / entry
        if start.is_file():
            candidates: Iterable[Path] = [start]
        elif repo.recursive:
            candidates = walk_files(start, skipped)
        else:
            candidates = sorted(p for p in start.iterdir() if p.is_file() and not p.is_symlink())
        for candidate in candidates:
            rel = candidate.relative_to(repo.base).as_posix()
            if candidate.suffix == ".py":
                python_files.append(rel)
            elif is_doc_file(rel):
                doc_files.append(rel)
    return sorted(set(python_files)), sorted(set(doc_files))


def installation_roots() -> list[tuple[str, Path]]:
    """(label, directory) of the running interpreter's standard library and its (venv) site-packages."""
    roots = [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]
    purelib = Path(sysconfig.get_paths()["purelib"])
    if purelib.is_dir():
        roots.append(("site-packages", purelib))
    return roots


def installation_repositories(packages: Iterable[str]) -> list[Repository]:
    """The standard library's repositories plus one per named site-packages package; a missing name is an error."""
    repos: list[Repository] = []
    for label, root in installation_roots():
        found = repositories_in_root(label, root)
        if label == "site-packages":
            by_name = {repo.name.removeprefix("site-packages/"): repo for repo in found}
            missing = sorted(set(packages) - set(by_name))
            if missing:
                raise InputError(
                    "config code.packages",
                    f"not installed as a package directory in {root}: {', '.join(missing)}",
                )
            found = [by_name[name] for name in sorted(set(packages))]
        repos.extend(found)
    if packages and not any(label == "site-packages" for label, _ in installation_roots()):
        raise InputError("config code.packages", "this interpreter has no site-packages directory")
    return repos


def repositories_in_root(label: str, root: Path) -> list[Repository]:
    """One repository per top-level package directory with Python in it, plus one for the loose modules."""
    repos: list[Repository] = []
    loose: list[str] = []
    for child in sorted(root.iterdir()):
        if child.is_symlink():
            continue
        if child.is_dir():
            # site-packages sits inside the stdlib directory when no venv is used; it is its own root.
            if _skipped_dir(child.name) or child.name in ("site-packages", "dist-packages"):
                continue
            if _has_python(child):
                repos.append(Repository(f"{label}/{child.name}", root, (child.name,), True, label))
        elif child.is_file() and child.suffix == ".py":
            loose.append(child.name)
    if loose:
        repos.append(Repository(f"{label}/{LOOSE_MODULES}", root, tuple(loose), False, label))
    return repos


def unresolvable_symlink(path: str | Path) -> str | None:
    """What is wrong with a path that is a symlink leading nowhere (a loop, or a dangling link); None otherwise.

    ``exists()`` is False for both, which would read as "no such file or directory" though the link is there.
    """
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop: the path is a symbolic link that leads back to itself"
        if os.path.islink(path):
            return f"dangling symlink: it points to {os.readlink(path)}, which does not exist"
    return None


def check_code_path(path: Path) -> None:
    """code.path must resolve: a symlink loop or a dangling link is named as such."""
    problem = unresolvable_symlink(path)
    if problem:
        raise InputError(path, problem)


def repositories_in_dir(path: Path, skipped: Counter[str] | None = None) -> list[Repository]:
    """One repository per subdirectory of ``path``; symlinks and loose files at the top are counted in
    ``skipped`` (``symlink``, ``top_level_file``), not read: a repository is a directory."""
    check_code_path(path)
    if not path.is_dir():
        raise InputError(path, "code.path must be a directory of repositories for source repos_dir")
    repos = []
    for child in sorted(path.iterdir()):
        if _skipped_dir(child.name):
            continue
        if child.is_symlink():
            count_skip(skipped, "symlink", child)
        elif child.is_dir():
            repos.append(Repository(child.name, child, (".",), True, "repos_dir"))
        else:
            count_skip(skipped, "top_level_file" if child.is_file() else "not_regular_file", child)
    return repos


# --------------------------------------------------------------------------------------------------- sampling


def sample_sorted(items: list, limit: int | None, rng: random.Random) -> list:
    """A seeded sample of at most ``limit`` items (all when None), returned in sorted order."""
    items = sorted(items)
    if limit is None or len(items) <= limit:
        return items
    return sorted(rng.sample(items, limit))


def repo_rng(seed: int, repo: str, purpose: str) -> random.Random:
    """A generator per repository, so one repository's sample does not depend on which others were drawn."""
    return random.Random(f"{seed}/{purpose}/{repo}")


def shard_of(repo: str, shards: int) -> int:
    """The shard a repository goes to, whole: the same repository always lands on the same shard."""
    return int(hashlib.sha256(repo.encode("utf-8")).hexdigest()[:8], 16) % shards


# ------------------------------------------------------------------------------------------------- records


def code_record(sf: SourceFile) -> dict:
    """A code document; the id comes from repository, path and the file's bytes."""
    digest = hashlib.sha256(sf.raw if sf.raw is not None else b"").hexdigest()
    meta: dict[str, Any] = {"repo": sf.repo, "path": sf.path, "bytes": len(sf.raw) if sf.raw is not None else 0}
    meta.update(sf.extra)
    if sf.error:
        meta["ingest_error"] = sf.error
        meta["ingest_error_detail"] = sf.detail
    return make_doc(sf.text, source="code", meta=meta, id=content_id(sf.repo, sf.path, digest))


def doc_record(repo: str, path: str, text: str, fmt: str) -> dict:
    return make_doc(
        text, source="docs", meta={"repo": repo, "path": path, "format": fmt}, id=content_id("docs", repo, path, text)
    )


# ------------------------------------------------------------------------------------------- filesystem sources


def _filesystem_files(
    repos: list[Repository], settings: CodeSettings, seed: int, stats: dict, skipped: Counter[str]
) -> tuple[list[SourceFile], list[dict]]:
    max_files = settings.max_files_per_repo
    max_bytes = settings.max_file_bytes
    by_name = {repo.name: repo for repo in repos}
    names = set(sample_sorted(list(by_name), settings.max_repos, random.Random(seed)))
    # Repositories named in include_repos join the sample whatever the draw, so a small run still meets the
    # funnel's rarer reasons (the stdlib's lib2to3 carries real Python 2 files, its test suite bad syntax).
    wanted = list(settings.include_repos)
    stats["include_repos_missing"] = sorted(name for name in wanted if name not in by_name)
    names.update(name for name in wanted if name in by_name)
    chosen = [by_name[name] for name in sorted(names)]
    stats["repositories_available"] = len(repos)
    stats["repositories"] = len(chosen)
    files: list[SourceFile] = []
    docs: list[dict] = []
    doc_skipped: Counter[str] = Counter()
    for repo in _progress(chosen, "ingest repositories"):
        python_files, doc_files = list_repository_files(repo, skipped)
        for rel in sample_sorted(python_files, max_files, repo_rng(seed, repo.name, "files")):
            raw, text, error, detail = read_source_file(repo.base / rel, max_bytes)
            files.append(SourceFile(repo.name, rel, raw, text, error, detail))
        for rel in sample_sorted(doc_files, max_files, repo_rng(seed, repo.name, "docs")):
            raw, text, error, _detail = read_source_file(repo.base / rel, max_bytes)
            if error:
                # The docs stage filters on language and length; unusable bytes are counted here, not passed on.
                doc_skipped[error] += 1
                continue
            docs.append(doc_record(repo.name, rel, text, is_doc_file(rel) or "text"))
    stats["docs_skipped"] = dict(sorted(doc_skipped.items()))
    return files, docs


# -------------------------------------------------------------------------------------------- The Stack dumps

STACK_REPO_FIELDS = ("max_stars_repo_name", "repo_name")
STACK_PATH_FIELDS = ("max_stars_repo_path", "path")
STACK_DUMP_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")
# Licence fields: The Stack v1 (lists of SPDX ids per repository role), v2 (ScanCode's SPDX ids, and its
# classification of the repository: "permissive" or "no_license").
STACK_LICENSE_LIST_FIELDS = (
    "max_stars_repo_licenses",
    "max_issues_repo_licenses",
    "max_forks_repo_licenses",
    "detected_licenses",
)
STACK_LICENSE_TYPE_FIELD = "license_type"
STACK_LICENSE_FIELDS = (*STACK_LICENSE_LIST_FIELDS, STACK_LICENSE_TYPE_FIELD)


class StackRow(NamedTuple):
    """What ingest takes from one row of a Stack dump; ``licenses`` is meta (see :func:`stack_licenses`)."""

    repo: str
    path: str
    content: str | None
    lang: str | None
    licenses: dict[str, Any]


def stack_dump_files(path: Path, skipped: Counter[str] | None = None) -> list[Path]:
    check_code_path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in walk_files(path, skipped) if p.name.endswith(STACK_DUMP_SUFFIXES))
        if not found:
            raise InputError(path, f"no {'/'.join(STACK_DUMP_SUFFIXES)} files in this stack_dump directory")
        return found
    raise InputError(path, "stack_dump path not found")


def _first_field(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def iter_stack_rows(path: Path, with_content: bool = True) -> Iterator[StackRow]:
    """One StackRow per row of one dump file (licences only with the content); a broken JSON line names the file
    and the line."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise InputError(path, f"not a readable Parquet file ({err})") from err
        wanted = [c for c in (*STACK_REPO_FIELDS, *STACK_PATH_FIELDS, "lang") if c in parquet.schema_arrow.names]
        if with_content:
            if "content" not in parquet.schema_arrow.names:
                raise InputError(path, "stack_dump Parquet file has no 'content' column")
            wanted.append("content")
            wanted.extend(c for c in STACK_LICENSE_FIELDS if c in parquet.schema_arrow.names)
        for batch in parquet.iter_batches(columns=wanted, batch_size=2048):
            for index, row in enumerate(batch.to_pylist()):
                yield _stack_fields(path, row, f"row {index}")
        return
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(path, f"line {lineno} is not valid JSON ({err.msg})") from err
                if not isinstance(row, dict):
                    raise InputError(path, f"line {lineno} is not a JSON object")
                yield _stack_fields(path, row, f"line {lineno}")
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as err:
        raise InputError(path, f"cannot be read as UTF-8 JSON lines ({err})") from err


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open("r", encoding="utf-8")


def _stack_fields(path: Path, row: Mapping[str, Any], where: str) -> StackRow:
    repo = _first_field(row, STACK_REPO_FIELDS)
    file_path = _first_field(row, STACK_PATH_FIELDS)
    if repo is None or file_path is None:
        raise InputError(
            path,
            f"{where} lacks a repository name ({'/'.join(STACK_REPO_FIELDS)}) "
            f"or a path ({'/'.join(STACK_PATH_FIELDS)})",
        )
    content = row.get("content")
    if content is not None and not isinstance(content, str):
        raise InputError(path, f"{where}: 'content' is not a string")
    return StackRow(str(repo), str(file_path), content, row.get("lang"), stack_licenses(path, row, where))


def stack_licenses(path: Path, row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The licence fields a row carries, as meta: ``licenses`` (the sorted union of the SPDX ids in The Stack
    v1's three ``*_repo_licenses`` lists and v2's ``detected_licenses``) and ``license_type`` (v2:
    "permissive" or "no_license"). A row with none of these fields gets neither key (licence unknown)."""
    meta: dict[str, Any] = {}
    ids: set[str] = set()
    for name in STACK_LICENSE_LIST_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InputError(path, f"{where}: '{name}' is not a list of licence ids")
        ids.update(value)
        meta["licenses"] = []
    if "licenses" in meta:
        meta["licenses"] = sorted(ids)
    kind = row.get(STACK_LICENSE_TYPE_FIELD)
    if kind is not None:
        if not isinstance(kind, str):
            raise InputError(path, f"{where}: '{STACK_LICENSE_TYPE_FIELD}' is not a string")
        meta[STACK_LICENSE_TYPE_FIELD] = kind
    return meta


def stack_kind(file_path: str, lang: str | None) -> str | None:
    """'code' for Python rows, a doc format for Markdown/reST rows, None for anything else."""
    if lang is not None:
        lowered = str(lang).lower()
        if lowered == "python":
            return "code"
        if lowered in ("markdown", "restructuredtext", "rst"):
            return is_doc_file(file_path) or "markdown"
        return None
    if file_path.endswith(".py"):
        return "code"
    return is_doc_file(file_path)


def _stack_dump_files(
    path: Path, settings: CodeSettings, seed: int, stats: dict, skipped: Counter[str]
) -> tuple[list[SourceFile], list[dict]]:
    dumps = stack_dump_files(path, skipped)
    max_bytes = settings.max_file_bytes
    # Pass 1: names only, so sampling never holds the whole dump's contents in memory.
    code_paths: dict[str, set[str]] = {}
    doc_paths: dict[str, set[str]] = {}
    skipped_other = 0
    for dump in dumps:
        for repo, file_path, _content, lang, _licenses in iter_stack_rows(dump, with_content=False):
            kind = stack_kind(file_path, lang)
            if kind == "code":
                code_paths.setdefault(repo, set()).add(file_path)
            elif kind:
                doc_paths.setdefault(repo, set()).add(file_path)
            else:
                skipped_other += 1
    repos = sorted(code_paths)
    chosen = set(sample_sorted(repos, settings.max_repos, random.Random(seed)))
    max_files = settings.max_files_per_repo
    wanted_code = {
        (r, p) for r in chosen for p in sample_sorted(list(code_paths[r]), max_files, repo_rng(seed, r, "files"))
    }
    wanted_docs = {
        (r, p) for r in chosen for p in sample_sorted(list(doc_paths.get(r, ())), max_files, repo_rng(seed, r, "docs"))
    }
    stats.update(repositories_available=len(repos), repositories=len(chosen), rows_not_python_or_docs=skipped_other)
    # Pass 2: contents of the sampled rows; a (repo, path) seen twice keeps every distinct content (dedup decides).
    files: list[SourceFile] = []
    docs: list[dict] = []
    doc_skipped: Counter[str] = Counter()
    for dump in dumps:
        for repo, file_path, content, lang, licenses in iter_stack_rows(dump):
            key = (repo, file_path)
            if key in wanted_code:
                raw, text, error, detail = _decode_stack_content(content, max_bytes)
                files.append(SourceFile(repo, file_path, raw, text, error, detail, licenses))
            elif key in wanted_docs:
                raw, text, error, _detail = _decode_stack_content(content, max_bytes)
                if error:
                    doc_skipped[error] += 1
                    continue
                docs.append(doc_record(repo, file_path, text, stack_kind(file_path, lang) or "text"))
    stats["docs_skipped"] = dict(sorted(doc_skipped.items()))
    return files, docs


def _decode_stack_content(content: str | None, max_bytes: int) -> tuple[bytes | None, str, str | None, str]:
    if content is None:
        return None, "", "unreadable", "row has no content"
    try:
        raw = content.encode("utf-8")
    except UnicodeEncodeError as err:
        # Lone surrogates: the dump's text was not valid Unicode to begin with.
        return content.encode("utf-8", "surrogatepass"), "", "non_utf8", f"unencodable character at {err.start}"
    text, error, detail = decode_source(raw, max_bytes)
    return raw, text, error, detail


# ------------------------------------------------------------------------------------------------- entry point


def collect_code(settings: CodeSettings, seed: int) -> tuple[list[SourceFile], list[dict], dict]:
    """Sampled code files and docs from the configured source, plus ingest statistics."""
    source = settings.source
    stats: dict[str, Any] = {"source": source}
    skipped: Counter[str] = Counter()
    if source == "python_installation":
        repos = installation_repositories(settings.packages)
        files, docs = _filesystem_files(repos, settings, seed, stats, skipped)
    elif source == "repos_dir":
        if not settings.path:
            raise InputError("config code.path", "source repos_dir needs code.path (a directory of repositories)")
        repos = repositories_in_dir(Path(settings.path), skipped)
        files, docs = _filesystem_files(repos, settings, seed, stats, skipped)
    else:  # stack_dump (CodeSettings admits no other source)
        if not settings.path:
            raise InputError("config code.path", "source stack_dump needs code.path (JSONL/Parquet file or dir)")
        files, docs = _stack_dump_files(Path(settings.path), settings, seed, stats, skipped)
    stats["skipped"] = {reason: skipped[reason] for reason in SKIP_REASONS}
    if any(skipped.values()):
        log.warning("%s: not read: %s", settings.path or source, _skip_summary(skipped))
    if not files and not docs:
        log.warning("%s: no repositories or files found: the code outputs are empty", settings.path or source)
    return files, docs, stats


def _skip_summary(skipped: Mapping[str, int]) -> str:
    return ", ".join(f"{skipped[reason]} {reason}" for reason in SKIP_REASONS if skipped.get(reason))


# The keys of the ``code:`` section ingestion reads: the rule passes these alone, so a change to the cleaning
# settings (a variant of the recipe among them) does not read the dump again.
INGEST_CODE_KEYS = ("source", "path", "max_repos", "max_files_per_repo", "include_repos", "packages", "max_file_bytes")


class IngestCodeJob(Settings):
    """What rule ingest_code reads: the seed, the number of code shards and the ``code:`` section's
    INGEST_CODE_KEYS (the rest of the section keeps its defaults here and is not read)."""

    seed: int
    shards: ShardsSettings
    code: CodeSettings


def run_ingest_code(settings: IngestCodeJob, paths: RulePaths) -> dict:
    """Rule ingest_code: sampled code files -> repository-sharded document shards, plus the docs found alongside."""
    return ingest_code(
        settings.code,
        settings.shards.code,
        settings.seed,
        paths.output["shards"],
        paths.output["docs"],
        paths.output["stats"],
    )


def ingest_code(
    settings: CodeSettings,
    shards: int,
    seed: int,
    shard_paths: list[str | Path],
    docs_path: str | Path,
    stats_path: str | Path,
) -> dict:
    """Write every code shard (even when empty), the docs found alongside, and stats.json; returns the stats."""
    if len(shard_paths) != shards:
        raise InputError("config shards.code", f"{shards} shards but {len(shard_paths)} output paths")
    files, docs, stats = collect_code(settings, seed)
    by_shard: list[list[dict]] = [[] for _ in range(shards)]
    errors: Counter[str] = Counter()
    for sf in files:
        if sf.error:
            errors[sf.error] += 1
        by_shard[shard_of(sf.repo, shards)].append(code_record(sf))
    files_per_shard = []
    for shard, records in enumerate(by_shard):
        records.sort(key=lambda d: (json.loads(d["meta"])["repo"], json.loads(d["meta"])["path"], d["id"]))
        files_per_shard.append(write_docs(shard_paths[shard], records))
    docs.sort(key=lambda d: (d["meta"], d["id"]))
    write_docs(docs_path, docs)
    stats.update(
        files=len(files),
        files_per_shard=files_per_shard,
        ingest_errors=dict(sorted(errors.items())),
        docs_found=len(docs),
        repositories_per_shard=[len({json.loads(d["meta"])["repo"] for d in recs}) for recs in by_shard],
    )
    write_json(stats_path, stats)
    log.info(
        "ingested %d files from %d repositories into %d shards; %d docs",
        len(files),
        stats.get("repositories", 0),
        shards,
        len(docs),
    )
    return stats


def _progress(items: list, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="repo", mininterval=5.0)
