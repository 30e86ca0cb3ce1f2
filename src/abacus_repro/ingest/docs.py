"""Technical docs (Markdown and reStructuredText pages) gathered into one shard for the docs filter.

Two origins: the pages the code ingest found inside repositories (``from_code.parquet``: ``source="docs"``,
meta ``repo``/``path``/``format``; used when ``text.docs.from_code_repos`` is true) and the page files shipped
under ``text.docs.sample_dir``. Nothing is judged here; every page read is written, and the docs filter gives
each one its keep/drop decision. A sample page that is not UTF-8 or is empty is an InputError naming it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..io import Funnel, content_id, doc_meta, make_doc, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..settings import DocsSettings

log = logging.getLogger(__name__)

SOURCE = "docs"
FORMATS = {".md": "md", ".markdown": "md", ".rst": "rst", ".rest": "rst"}


def format_of(path: str | Path, declared: str | None = None) -> str | None:
    """md / rst from a declared format or the file suffix; None when it is neither."""
    if declared:
        declared = declared.lower()
        if declared in ("md", "markdown", "myst"):
            return "md"
        if declared in ("rst", "rest", "restructuredtext"):
            return "rst"
    return FORMATS.get(PurePosixPath(str(path)).suffix.lower())


def read_sample_page(path: str | Path, sample_dir: str | Path | None = None) -> dict:
    """One shipped page as a document; meta path is relative to ``sample_dir`` (stable across checkouts)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise InputError(path, "docs sample page not found") from err
    except UnicodeDecodeError as err:
        raise InputError(path, f"docs sample page is not UTF-8 ({err.reason} at byte {err.start})") from err
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InputError(path, "docs sample page is empty")
    fmt = format_of(path)
    if fmt is None:
        raise InputError(path, "docs sample page is neither Markdown (.md) nor reStructuredText (.rst)")
    try:
        relative = path.resolve().relative_to(Path(sample_dir).resolve()).as_posix() if sample_dir else path.name
    except ValueError:
        relative = path.name
    meta = {"origin": "samples", "path": relative, "format": fmt, "repo": None}
    return make_doc(text, SOURCE, meta, id=content_id(SOURCE, "samples", relative))


def pages_from_code(path: str | Path) -> list[dict]:
    """Docs pages the code ingest found in repositories, re-labelled with ``origin=code_repos``."""
    docs = []
    for doc in read_docs(path):
        meta = doc_meta(doc)
        fmt = format_of(meta.get("path") or "", meta.get("format"))
        meta.update(origin="code_repos", format=fmt or str(meta.get("format") or "unknown"))
        docs.append(make_doc(doc["text"], SOURCE, meta, id=doc["id"]))
    return docs


def ingest_docs(
    from_code: str | Path | None, sample_files: list[str | Path], settings: DocsSettings
) -> tuple[list[dict], dict]:
    """All pages, sample pages first (sorted by path), then those from code repositories (sorted by id).

    ``sample_files``: the pages under ``settings.sample_dir``; ``from_code``: the code ingest's docs shard, used
    when ``settings.from_code_repos`` is true.
    """
    sample_dir, use_code_repos = settings.sample_dir, settings.from_code_repos
    funnel = Funnel("ingest_docs")
    docs = [read_sample_page(p, sample_dir) for p in sorted(map(str, sample_files))]
    code_pages: list[dict] = []
    if use_code_repos and from_code is not None:
        code_pages = sorted(pages_from_code(from_code), key=lambda d: d["id"])
    elif from_code is not None:
        log.info("text.docs.from_code_repos is false: ignoring %s", from_code)
    docs.extend(code_pages)
    funnel.keep(len(docs))
    origin_format = Counter(f"{doc_meta(d)['origin']}/{doc_meta(d)['format']}" for d in docs)
    funnel.extra.update(
        by_origin_format=dict(sorted(origin_format.items())),
        samples=len(sample_files),
        from_code_repos=len(code_pages),
        used_code_repos=bool(use_code_repos),
    )
    return docs, funnel.to_dict()


def ingest_docs_rule(settings: DocsSettings, paths: RulePaths) -> dict:
    """Rule ingest_docs: docs pages from code repositories plus the shipped sample pages -> one shard."""
    samples = paths.input.get("samples") or []
    docs, stats = ingest_docs(paths.input["from_code"], [samples] if isinstance(samples, str) else samples, settings)
    write_docs(paths.output["docs"], docs)
    write_json(paths.output["stats"], stats)
    log.info("%d docs pages: %s", stats["kept"], stats["by_origin_format"])
    return stats
