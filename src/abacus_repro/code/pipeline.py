"""The cleaning funnel for one shard of code documents, and the same decision for files on disk.

Steps, in order; each drop has one reason, so read == kept + sum(dropped):

1. ingest errors (non_utf8, nul_bytes, empty, too_large, unreadable), flagged by the ingest stage; then
   ``license``: none of the file's licences in ``code.licenses.allow`` (code/licenses.py);
2. ``duplicate``: same content once whitespace is normalised (the first in repository/path order is kept);
3. ``python2`` / ``syntax_error``: ast.parse under Python 3, with ruff's parser as the second opinion for newer
   syntax than the running interpreter knows (recipe step 1);
4. ``data_dense``, then ``repetitive`` (recipe step 2);
5. ``undefined_name``: ruff F821, in batches (recipe step 3). A file with ``from x import *`` cannot be judged
   by F821 (any name may come from the star), so it is kept and counted as ``star_import_unjudged``;
6. ruff's layout fixes on every kept file (counted as ``fixed_files``). Rule code_clean ends here: it writes the
   kept files one per document (cleaned.parquet), with what ordering needs in their meta;
7. ``near_duplicate``: MinHash-LSH over the whole corpus (code/near_dedup.py; the first in repository/path order
   is kept), then dependency order per repository (recipe step 4): rule code_finish.

``clean_shard`` runs steps 1-6 and the ordering in one call, without step 7 (which needs every shard).

Each step but the ingest errors and the licence can be turned off (``code.steps``, ``code.near_dedup.enabled``,
``code.redact.enabled``): a step that is off judges nothing, so its reasons never appear, and the stats name it in
``steps_off`` (written only when a step is off; code_clean's name only the steps it runs, so its outputs do not
depend on the near-duplicate and ordering switches). With ``code.steps.syntax`` off, a file no parser accepts is kept
unjudged (``syntax_unjudged``): the later steps need its syntax tree (content, imports) or a parse (ruff), so none of
them judges or fixes it either.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InputError
from ..imports import ImportStatement
from ..io import Funnel, content_id, doc_meta, make_doc, read_docs, read_json, write_docs, write_json
from ..rules import RulePaths
from ..settings import CodeSettings, LicenseSettings
from .content import judge_data_dense, judge_repetitive
from .deps import dependency_order, module_index, resolve_imports
from .licenses import license_drop_detail, license_table
from .redact import Finding, apply_redactions, counted_kinds, find_redactions
from .ruff_batch import check_and_fix, syntax_errors
from .settings import CLEANED_META_KEY, FIX_SELECT, feature_version
from .syntax import ParsedFile, analyse_source, analyse_tree, classify_failure, judge_tree, parse_python

log = logging.getLogger(__name__)

INGEST_REASONS = ("unreadable", "too_large", "empty", "nul_bytes", "non_utf8")
# Funnel order: the order in which the steps run (the funnel plot follows it). near_duplicate runs last, over the
# whole corpus, on the files every other step kept (rules code_minhash to code_finish: code/near_dedup.py).
REASONS = (
    *INGEST_REASONS,
    "license",
    "duplicate",
    "syntax_error",
    "python2",
    "data_dense",
    "repetitive",
    "undefined_name",
    "near_duplicate",
)

# The switchable steps in funnel order: code.steps' keys, then the two switched in their own sections.
SWITCHED_STEPS = (
    "exact_dedup",
    "syntax",
    "content",
    "undefined_names",
    "ruff_fixes",
    "redact",
    "near_dedup",
    "dependency_order",
)
# The ones rule code_clean runs: its stats name only these, so they do not depend on the later steps' switches.
CLEAN_STEPS = SWITCHED_STEPS[:6]
# The drop reasons each switch's step gives (a step that is off gives none of them); the others only change text
# or order.
STEP_REASONS = {
    "exact_dedup": ("duplicate",),
    "syntax": ("syntax_error", "python2"),
    "content": ("data_dense", "repetitive"),
    "undefined_names": ("undefined_name",),
    "near_dedup": ("near_duplicate",),
}


def steps_off(settings: CodeSettings, steps: tuple[str, ...] = SWITCHED_STEPS) -> list[str]:
    """Which of ``steps`` this config turns off, in funnel order (empty for the recipe)."""
    on = {**settings.steps.model_dump(), "redact": settings.redact.enabled, "near_dedup": settings.near_dedup.enabled}
    return [step for step in steps if not on[step]]


@dataclass
class Judged:
    """One file's way through the funnel."""

    doc: Mapping[str, Any]
    meta: dict
    text: str
    reason: str | None = None
    detail: str = ""
    parsed: ParsedFile | None = None
    notes: list[str] = field(default_factory=list)
    fixed: bool = False
    redactions: list[Finding] = field(default_factory=list)


def normalised_hash(text: str) -> str:
    """Content hash that ignores whitespace differences (re-indented or re-wrapped copies are duplicates)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _judge_content(item: Judged, settings: CodeSettings) -> None:
    """Recipe step 2 on a file that parsed: data density, then repetitiveness."""
    detail_dense = judge_data_dense(item.text, item.parsed, settings)
    if detail_dense:
        item.reason, item.detail = "data_dense", detail_dense
        return
    detail_rep = judge_repetitive(item.text, settings)
    if detail_rep:
        item.reason, item.detail = "repetitive", detail_rep


def _judge_unparsed(unparsed: list[tuple[Judged, str]], settings: CodeSettings) -> None:
    """Files the running interpreter cannot parse: ruff's parser (one process per batch) says whether they are
    Python 3 written in newer syntax; the rest are Python 2 or syntax errors."""
    if not unparsed:
        return
    ruff_errors = syntax_errors(
        [item.text for item, _ in unparsed], [str(item.meta.get("path", "")) for item, _ in unparsed], settings
    )
    for (item, error), ruff_error in zip(unparsed, ruff_errors):
        if ruff_error is None:
            item.parsed = analyse_source(item.text)
            item.notes.append(
                f"parsed by ruff's {settings.target_version} grammar "
                f"(Python {sys.version_info[0]}.{sys.version_info[1]}: {error})"
            )
        elif settings.steps.syntax:
            item.reason, item.detail = classify_failure(item.text, error, feature_version(settings))
        else:
            item.notes.append(f"does not parse ({error}): kept unjudged, code.steps.syntax is off")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while trees are built: ast.parse creates millions of objects, each
    allocation counts towards a collection, and each collection walks the whole shard held in memory (a third of
    the parse time). Syntax trees hold no reference cycles, so reference counting frees them as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def judge_files(
    items: list[Judged], settings: CodeSettings, dedup: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Run every per-file step and the ruff steps on ``items`` in place, then redact the files kept; returns
    extra counters (ruff's, the redactions per kind, and files and bytes per licence read and kept)."""
    with _gc_paused():
        _judge_syntax_and_content(items, settings, dedup, progress)
        counters: dict[str, Any] = {}
        if not settings.steps.syntax:  # the files no parser accepts, kept unjudged by every later step
            counters["syntax_unjudged"] = sum(1 for item in items if item.reason is None and item.parsed is None)
        counters.update(_judge_with_ruff(items, settings))
        counters.update(_redact_kept(items, settings, progress))
    counters["license_table"] = license_table((item.meta, _read_bytes(item), item.reason is None) for item in items)
    return counters


def _redact_kept(items: list[Judged], settings: CodeSettings, progress: bool) -> dict[str, Any]:
    """E-mail and IP addresses and keys in the kept files replaced by typed placeholders (code/redact.py), when
    ``code.redact.enabled``; the counts per kind and the files touched."""
    if not settings.redact.enabled:
        return {"redacted": {}, "redacted_files": 0}
    kinds = list(settings.redact.kinds)
    totals = dict.fromkeys(kinds, 0)
    files = 0
    for item in tqdm(items, desc="code redact", unit="file", mininterval=5.0, disable=not progress):
        if item.reason is not None:
            continue
        findings = find_redactions(item.text, kinds)
        if not findings:
            continue
        item.redactions = findings
        item.text = apply_redactions(item.text, findings)
        counts = counted_kinds(findings)
        for kind, count in counts.items():
            totals[kind] += count
        files += 1
        item.notes.append("redacted: " + ", ".join(f"{counts[kind]} {kind}" for kind in kinds if counts[kind]))
    return {"redacted": totals, "redacted_files": files}


def _judge_syntax_and_content(items: list[Judged], settings: CodeSettings, dedup: bool, progress: bool) -> None:
    seen: dict[str, str] = {}
    unparsed: list[tuple[Judged, str]] = []
    for item in tqdm(items, desc="code parse", unit="file", mininterval=5.0, disable=not progress):
        error = item.meta.get("ingest_error")
        if error:
            item.reason, item.detail = error, item.meta.get("ingest_error_detail", "")
            continue
        license_detail = license_drop_detail(item.meta, settings.licenses.allow)
        if license_detail:
            item.reason, item.detail = "license", license_detail
            continue
        if dedup and settings.steps.exact_dedup:
            key = normalised_hash(item.text)
            if key in seen:
                item.reason, item.detail = "duplicate", f"same content as {seen[key]}"
                continue
            seen[key] = f"{item.meta.get('repo')}/{item.meta.get('path')}"
        tree, error = parse_python(item.text, feature_version(settings))
        if tree is None:
            unparsed.append((item, error))
            continue
        if not settings.steps.syntax:  # the tree still serves the content step and the imports
            item.parsed = analyse_tree(tree)
            continue
        item.parsed, reason, detail = judge_tree(tree)
        if reason:
            item.reason, item.detail = reason, detail
    _judge_unparsed(unparsed, settings)
    if not settings.steps.content:
        return
    for item in tqdm(items, desc="code content", unit="file", mininterval=5.0, disable=not progress):
        if item.reason is None and item.parsed is not None:
            _judge_content(item, settings)


def _judge_with_ruff(items: list[Judged], settings: CodeSettings) -> dict[str, int]:
    """Recipe step 3 (F821) on the files still kept, then ruff's layout fixes; returns the counters. Each is
    skipped when switched off (``code.steps``); a file that did not parse (syntax step off) goes through neither."""
    counters = {"star_import_unjudged": 0, "fixed_files": 0, "fix_reverted": 0}
    candidates = [item for item in items if item.reason is None and item.parsed is not None]
    judge = []
    for item in candidates:
        star = item.parsed.star_import
        if star and settings.steps.undefined_names:
            counters["star_import_unjudged"] += 1
            item.notes.append("from-import * present: undefined names not judged (F821)")
        judge.append(settings.steps.undefined_names and not star)
    fix_select = FIX_SELECT if settings.steps.ruff_fixes else ()
    if not any(judge) and not fix_select:
        return counters
    log.info(
        "ruff: F821 on %d files, then fixes %s, in batches of %d",
        sum(judge),
        ",".join(fix_select) or "none",
        settings.ruff_batch_size,
    )
    result = check_and_fix(
        [i.text for i in candidates], [str(i.meta.get("path", "")) for i in candidates], judge, settings, fix_select
    )
    for item, findings, fixed in zip(candidates, result.findings, result.fixed):
        if findings:
            item.reason = "undefined_name"
            item.detail = "; ".join(findings[:5]) + (f"; ... {len(findings)} in all" if len(findings) > 5 else "")
            continue
        if fixed is None or fixed == item.text:
            continue
        # No re-parse here: ruff re-parses every file it fixes and undoes a fix that would break it (counted).
        item.text = fixed
        item.fixed = True
        item.notes.append("ruff fixes applied")
        counters["fixed_files"] += 1
    counters["fix_reverted"] = result.fix_reverted
    return counters


def _to_items(docs: Iterable[Mapping[str, Any]]) -> list[Judged]:
    items = []
    for doc in docs:
        meta = json.loads(doc["meta"]) if doc.get("meta") else {}
        items.append(Judged(doc, meta, doc.get("text") or ""))
    # Repository/path order: which duplicate survives and every output order follow from it.
    items.sort(key=lambda i: (str(i.meta.get("repo", "")), str(i.meta.get("path", "")), str(i.doc.get("id", ""))))
    return items


def _order_repositories(
    kept: list[Judged], dependency_order_on: bool
) -> tuple[dict[str, list[tuple[Judged, list[str]]]], int]:
    """Per repository (sorted), its files with the in-repository modules each imports, in dependency order; with
    the ordering off, in repository/path order (the imports are still resolved: meta ``imports`` says the same)."""
    by_repo: dict[str, list[Judged]] = defaultdict(list)
    for item in kept:
        by_repo[str(item.meta.get("repo", ""))].append(item)
    ordered: dict[str, list[tuple[Judged, list[str]]]] = {}
    cycles = 0
    for repo in sorted(by_repo):
        files: dict[str, Judged] = {}
        for item in by_repo[repo]:
            path = str(item.meta.get("path", ""))
            # A dump may hold one path twice with different contents: both stay, under distinct keys.
            key, copy = path, 1
            while key in files:
                copy += 1
                key = f"{path}#{copy}"
            files[key] = item
        index = module_index(files)
        deps = {
            path: resolve_imports(path, item.parsed.imports if item.parsed else [], index)
            for path, item in files.items()
        }
        order, broken = dependency_order(deps) if dependency_order_on else (list(files), 0)
        cycles += broken
        ordered[repo] = [(files[path], sorted(deps[path])) for path in order]
    return ordered, cycles


def _read_bytes(item: Judged) -> int:
    """A file's size in the dump: the bytes ingest read (its meta ``bytes``, so a file refused as too large or
    undecodable still counts its size), else the UTF-8 bytes of its text, before any fix."""
    if "bytes" in item.meta:
        return int(item.meta["bytes"])
    return len((item.doc.get("text") or "").encode("utf-8", "surrogatepass"))


def clean_files(docs: Iterable[Mapping[str, Any]], settings: CodeSettings) -> tuple[list[Judged], list[dict], Funnel]:
    """Steps 1-6 on one shard: (kept files in repository/path order, dropped records, funnel in files and bytes)."""
    items = _to_items(docs)
    counters = judge_files(items, settings, dedup=True)
    funnel = Funnel("code_clean", count_bytes=True)
    dropped: list[dict] = []
    kept: list[Judged] = []
    for item in items:
        if item.reason is None:
            funnel.keep(nbytes=_read_bytes(item))
            kept.append(item)
        else:
            funnel.drop(item.reason, nbytes=_read_bytes(item))
            dropped.append({**item.doc, "reason": item.reason, "detail": item.detail})
    funnel.extra.update(counters)
    funnel.extra.update(steps=list(REASONS), repo_output=settings.repo_output)
    _record_steps_off(funnel, steps_off(settings, CLEAN_STEPS))
    return kept, dropped, funnel


def _record_steps_off(funnel: Funnel, off: list[str]) -> None:
    """The steps switched off, in the stats (absent when every step ran, as before the switches existed)."""
    if off:
        funnel.extra["steps_off"] = off


def finish_files(kept: list[Judged], funnel: Funnel, settings: CodeSettings) -> list[dict]:
    """Dependency order (recipe step 4) and the output documents of the files left; their counts join the funnel."""
    ordering = settings.steps.dependency_order
    ordered, cycles = _order_repositories(kept, ordering)
    outputs = _output_documents(ordered, settings.repo_output)
    funnel.extra.update(repositories=len(ordered), repo_output=settings.repo_output, output_documents=len(outputs))
    if ordering:  # no cycle is looked for when nothing is ordered (steps_off names dependency_order)
        funnel.extra["import_cycles_broken"] = cycles
    _record_steps_off(funnel, steps_off(settings))
    log.info("read %d, kept %d, dropped %s", funnel.read, funnel.kept, dict(funnel.dropped))
    return outputs


def clean_shard(docs: Iterable[Mapping[str, Any]], settings: CodeSettings) -> tuple[list[dict], list[dict], Funnel]:
    """(kept documents, dropped records, funnel) for one shard of ingested code documents: steps 1-6 and the
    dependency order in one call, without near-duplicate removal (which needs every shard)."""
    kept, dropped, funnel = clean_files(docs, settings)
    return finish_files(kept, funnel, settings), dropped, funnel


def cleaned_documents(kept: list[Judged]) -> list[dict]:
    """code_clean's kept files, one document each (ruff's fixes applied), in repository/path order. Their meta is
    the ingest's plus, under CLEANED_META_KEY, what code_finish needs without parsing again: the size as read,
    whether ruff fixed the file and its import statements."""
    documents = []
    for item in kept:
        carried = {
            "read_bytes": _read_bytes(item),
            "fixed": item.fixed,
            "imports": [list(statement) for statement in (item.parsed.imports if item.parsed else [])],
        }
        meta = {**item.meta, CLEANED_META_KEY: carried}
        documents.append(make_doc(item.text, item.doc.get("source") or "code", meta, id=item.doc.get("id")))
    return documents


def cleaned_items(docs: Iterable[Mapping[str, Any]], path: str | Path) -> list[Judged]:
    """The files of a cleaned.parquet (read from ``path``) as code_clean left them, ready for ordering."""
    items = []
    for doc in docs:
        meta = doc_meta(doc)
        carried = meta.pop(CLEANED_META_KEY, None)
        if not isinstance(carried, dict) or not {"fixed", "imports"} <= set(carried):
            raise InputError(
                path, f"document {doc.get('id')} lacks meta {CLEANED_META_KEY} (not written by code_clean?)"
            )
        imports = [
            ImportStatement(kind, level, module, tuple(names), lazy)
            for kind, level, module, names, lazy in carried["imports"]
        ]
        items.append(
            Judged(doc, meta, doc.get("text") or "", parsed=ParsedFile(imports=imports), fixed=carried["fixed"])
        )
    return items


def finish_shard(
    cleaned: list[dict],
    near: Mapping[int, Mapping[str, Any]],
    clean_stats: Mapping[str, Any],
    settings: CodeSettings,
    path: str | Path,
) -> tuple[list[dict], list[dict], Funnel]:
    """(kept documents, near-duplicate records, the whole shard's funnel): the shard's cleaned files (read from
    ``path``) less its near duplicates (``near``: row -> cluster row, code/near_dedup.py), in dependency order."""
    funnel = Funnel.from_dict(clean_stats)
    kept: list[Judged] = []
    dropped: list[dict] = []
    for row, item in enumerate(cleaned_items(cleaned, path)):
        member = near.get(row)
        if member is None:
            kept.append(item)
            continue
        if member["id"] != item.doc.get("id"):
            raise InputError(
                path,
                f"row {row} is {item.doc.get('id')}, the near-duplicate clusters name {member['id']} (stale clusters?)",
            )
        funnel.drop_kept("near_duplicate", nbytes=member["bytes"])
        detail = (
            f"near-duplicate cluster {member['cluster']}: kept {member['kept_repo']}/{member['kept_path']} "
            f"(id {member['kept_id']}), estimated Jaccard {member['jaccard']:.3f}"
        )
        document = make_doc(item.text, item.doc.get("source") or "code", item.meta, id=item.doc.get("id"))
        dropped.append({**document, "reason": "near_duplicate", "detail": detail})
    if len(dropped) != len(near):
        raise InputError(path, f"the near-duplicate clusters name {len(near)} rows of this shard, {len(dropped)} found")
    return finish_files(kept, funnel, settings), dropped, funnel


def run_code_clean(settings: CodeSettings, paths: RulePaths) -> dict:
    """Rule code_clean: one repository shard through cleaning steps 1-6 (recipe steps 1-3); the kept files one per
    document, before near-duplicate removal and dependency order (rule code_finish)."""
    kept, dropped, funnel = clean_files(read_docs(paths.input["shard"]), settings)
    funnel.extra["shard"] = int(paths.wildcards["shard"])
    write_docs(paths.output["cleaned"], cleaned_documents(kept))
    write_docs(paths.output["dropped"], dropped, dropped=True)
    stats = funnel.to_dict()
    write_json(paths.output["stats"], stats)
    log.info("read %d, kept %d, dropped %s", funnel.read, funnel.kept, dict(funnel.dropped))
    return stats


def run_code_finish(settings: CodeSettings, paths: RulePaths) -> dict:
    """Rule code_finish: one shard's near duplicates dropped, then dependency order (recipe step 4); its stats
    account for the whole shard (every reason of code_clean and near_duplicate)."""
    from .near_dedup import near_duplicates_of_shard

    shard = int(paths.wildcards["shard"])
    near = near_duplicates_of_shard(paths.input["clusters"], shard)
    clean_stats = read_json(paths.input["stats"])
    cleaned = read_docs(paths.input["cleaned"])
    kept, dropped, funnel = finish_shard(cleaned, near, clean_stats, settings, paths.input["cleaned"])
    write_docs(paths.output["kept"], kept)
    write_docs(paths.output["near_dropped"], dropped, dropped=True)
    stats = funnel.to_dict()
    write_json(paths.output["stats"], stats)
    return stats


def _output_documents(ordered: dict[str, list[tuple[Judged, list[str]]]], repo_output: str) -> list[dict]:
    outputs: list[dict] = []
    for repo, files in ordered.items():
        if repo_output == "files":
            for position, (item, deps) in enumerate(files):
                meta = {**item.meta, "order": position, "imports": deps, "fixed": item.fixed}
                outputs.append(
                    make_doc(item.text, source=item.doc.get("source") or "code", meta=meta, id=item.doc.get("id"))
                )
        else:
            text = "\n".join(f"# path: {item.meta.get('path')}\n{_ends_with_newline(item.text)}" for item, _ in files)
            meta = {"repo": repo, "paths": [item.meta.get("path") for item, _ in files], "files": len(files)}
            outputs.append(make_doc(text, source="code", meta=meta, id=content_id("code-repo", repo, text)))
    return outputs


def _ends_with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------------------------- files on disk


def _python_files(paths: Iterable[str | Path], skipped: Counter[str] | None = None) -> list[Path]:
    """The files named, and the .py files under the directories named, walked as ingest walks a repository
    (sorted; no symlinks, no hidden, VCS, cache or virtual-environment directories; what is passed over is
    counted in ``skipped`` by reason)."""
    from ..ingest.code import walk_files

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in walk_files(path, skipped) if p.suffix == ".py")
        else:
            found.append(path)
    return found


def check_paths(paths: Iterable[str | Path], settings: CodeSettings) -> list[dict]:
    """The workflow's decision for each file (each .py under a directory), duplicates aside.

    Returns one {"path", "kept", "reason", "detail"} per file, in the order given (directories sorted).
    """
    return list(iter_check_paths(paths, settings))


def iter_check_paths(
    paths: Iterable[str | Path], settings: CodeSettings, skipped: Counter[str] | None = None
) -> Iterator[dict]:
    """check_paths, one ruff batch of files at a time, so a large tree streams out in bounded memory; the
    entries the walk passes over (symlinks, directories it cannot list) are counted in ``skipped``. A file on
    disk carries no licence field, so ``code.licenses.allow`` is not applied here (it would drop every file)."""
    from ..ingest.code import read_source_file

    settings = settings.model_copy(update={"licenses": LicenseSettings()})
    files = _python_files(paths, skipped)
    for start in range(0, len(files), settings.ruff_batch_size):
        items = []
        for position, path in enumerate(files[start : start + settings.ruff_batch_size], start):
            # Every file named is read as Python source (its coding line honoured), whatever its suffix.
            _raw, text, error, detail = read_source_file(path, settings.max_file_bytes, python_source=True)
            meta: dict[str, Any] = {"repo": "check", "path": str(path), "position": position}
            if error:
                meta.update(ingest_error=error, ingest_error_detail=detail)
            items.append(Judged({"id": str(position), "text": text, "source": "code", "meta": ""}, meta, text))
        judge_files(items, settings, dedup=False, progress=False)
        for item in items:
            decision = {
                "path": item.meta["path"],
                "kept": item.reason is None,
                "reason": item.reason,
                "detail": item.detail if item.reason else "; ".join(item.notes),
            }
            if item.redactions:  # what redaction replaced, masked: never the value itself
                decision["redactions"] = [finding.to_dict() for finding in item.redactions if finding.counted]
            yield decision
