"""StackExchange data dumps (``Posts.xml``, plain or inside the site's ``.7z``) to question-and-answer documents.

Memory stays flat in the dump's size, from the XML to the Parquet output:

1. One streaming pass over the rows (``xml.etree.ElementTree.iterparse``, each ``<row>`` cleared once read;
   a ``.7z`` member is decompressed straight into the parser, see :mod:`.se_archive`). Questions and answers
   with text go into a temporary SQLite database on disk (``$TMPDIR`` or ``work_dir``), not into Python
   dicts: Stack Overflow's dump has ~24M questions and ~35M answers, which no dict holds.
2. One merge of two ordered cursors, questions by id and answers by (parent id, id): each question meets its
   answers, the accepted answer and the ``answers_per_question`` best-scored others are chosen, and the
   document goes to the caller (``on_kept``) at once: the rule writes it to Parquet in row groups.

Both dump layouts are read: the older ``Tags="&lt;a&gt;&lt;b&gt;"`` and the 2024 ``Tags="|a|b|"``, with or
without ``ContentLicense``, with or without a UTF-8 byte-order mark.

Document text (Markdown; the HTML bodies go through :func:`html_to_markdown`)::

    # {title}

    {question body}

    ## Accepted answer        <- only when the accepted answer exists and has text

    {accepted answer body}

    ## Answer                 <- each further answer, best score first (ties: lower post id first)

    {answer body}

The funnel counts questions: each question row (and each row whose type cannot be read, or is no post type the
dumps define) is kept as one document or dropped with a reason (``malformed_row``, ``unknown_post_type``,
``empty_body``, ``no_answer``, ``duplicate_id``). Answers are accounted separately in ``rows.answers_detail``:
used, not chosen, orphans (their question is not in the dump or was dropped), answers to a row of unknown post
type, empty, malformed, duplicate ids. A dump with no rows gives no documents and a warning naming it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..io import DOC_SCHEMA, DROPPED_SCHEMA, Funnel, content_id, make_doc, write_json
from ..rules import RulePaths
from ..settings import StackExchangeSettings
from .html2md import html_to_markdown
from .se_archive import is_7z, open_posts

log = logging.getLogger(__name__)

SOURCE = "stackexchange"
QUESTION, ANSWER = 1, 2
# The other post types the dumps define (their PostTypes table): tag wikis and excerpts, moderator nominations,
# wiki placeholders, privilege wikis, articles, help articles, collections, questionnaire responses,
# announcements, collective discussions and collections. None is Q&A; any type outside this set is counted as
# ``unknown_post_type``, so a new kind of post is seen rather than filed with the tag wikis.
OTHER_POST_TYPES = frozenset({3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
ANSWER_OUTCOMES = (
    "used",
    "not_chosen",
    "orphan",
    "parent_unknown_post_type",
    "empty_body",
    "malformed",
    "duplicate_id",
)
_TAG_ANGLE = re.compile(r"<([^<>]+)>")
_HTML_TAG = re.compile(r"<[^>]*>")
# Question attributes kept for the document's meta (everything else in the row is dropped right away).
_META_ATTRS = (
    "ViewCount",
    "CommentCount",
    "Tags",
    "CreationDate",
    "LastActivityDate",
    "ClosedDate",
    "ContentLicense",
    "PostTypeId",
)
_INSERT_BATCH = 2000

Emit = Callable[[dict], None]


@dataclass
class _Question:
    id: int
    title: str
    body: str
    score: int
    accepted_id: int | None
    attrs: dict[str, str]


@dataclass
class _Answer:
    id: int
    score: int
    body: str


def site_from_path(path: str | Path) -> str:
    """The site a dump belongs to, from the official file names.

    ``python.stackexchange.com.Posts.xml`` / ``<site>/Posts.xml`` / ``python.stackexchange.com.7z`` /
    ``stackoverflow.com-Posts.7z`` -> ``python.stackexchange.com`` (resp. ``stackoverflow.com``).
    """
    path = Path(path)
    name = path.name
    for suffix in ("-Posts.7z", ".Posts.xml", "Posts.xml", ".7z", ".xml"):
        if name.lower().endswith(suffix.lower()):
            name = name[: -len(suffix)]
            break
    return name.strip(".") or path.parent.name or "unknown"


def parse_tags(raw: str | None) -> list[str]:
    """Both dump layouts: ``<python><list>`` (older) and ``|python|list|`` (2024)."""
    if not raw:
        return []
    if "|" in raw:
        return [tag for tag in raw.split("|") if tag]
    angled = _TAG_ANGLE.findall(raw)
    return angled if angled else raw.split()


def iter_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Yield each ``<row>``'s attributes; corrupt or truncated XML is an InputError with line and column."""
    with open_posts(path) as (stream, name):
        root = None
        try:
            for event, element in ET.iterparse(stream, events=("start", "end")):
                if root is None:
                    root = element
                    if root.tag != "posts":
                        raise InputError(name, f"root element is <{root.tag}>, expected <posts> (not a Posts.xml dump)")
                    continue
                if event == "end" and element.tag == "row":
                    yield dict(element.attrib)
                    root.clear()  # drop finished rows: memory stays flat however large the dump
        except ET.ParseError as err:
            line, column = err.position
            reason = re.sub(r":? line \d+, column \d+$", "", err.msg)
            raise InputError(name, f"corrupt or truncated XML at line {line}, column {column}: {reason}") from err
        if root is None:
            raise InputError(name, "no XML elements found")


def _int(attrs: dict[str, str], name: str) -> int:
    value = attrs.get(name)
    if value is None:
        raise ValueError(f"missing {name}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def _optional_int(attrs: dict[str, str], name: str) -> int | None:
    value = attrs.get(name)
    return int(value) if value not in (None, "") and value.lstrip("-").isdigit() else None


def has_text(body: str) -> bool:
    """Whether an HTML body shows anything (text or an image) once tags are removed."""
    return bool(_HTML_TAG.sub("", body).strip()) or "<img" in body


def select_answers(question: _Question, answers: list[_Answer], per_question: int) -> list[_Answer]:
    """The accepted answer first (when present), then the best-scored others; ties go to the older post."""
    accepted = [a for a in answers if a.id == question.accepted_id]
    others = sorted((a for a in answers if a.id != question.accepted_id), key=lambda a: (-a.score, a.id))
    return accepted + others[:per_question]


def _dropped_question(site: str, qid: str, title: str, body: str, reason: str, detail: str, attrs: dict) -> dict:
    text = f"# {title}\n\n{html_to_markdown(body)}".strip() if (title or body) else ""
    meta = {"site": site, "question_id": qid, "post_type": attrs.get("PostTypeId", "")}
    doc = make_doc(text, SOURCE, meta, id=content_id(SOURCE, site, str(qid)))
    doc.update(reason=reason, detail=detail)
    return doc


def _pack(body: str) -> bytes:
    """HTML bodies are stored zlib-compressed (level 1: cheap next to parsing; halves the store on disk)."""
    return zlib.compress(body.encode("utf-8"), 1)


def _unpack(blob: bytes) -> str:
    return zlib.decompress(blob).decode("utf-8")


class _ThreadStore:
    """Questions and answers on disk (SQLite), merged back in question-id order.

    Journal and fsync are off: the database is scratch, deleted when the dump is done. It holds every
    question and every answer with text, compressed: about half the dump's size on disk (bioinformatics: 0.47).
    """

    def __init__(self, directory: Path):
        self.path = directory / "threads.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", "cache_size=-32768"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE questions (id INTEGER PRIMARY KEY, title TEXT, body BLOB, score INTEGER,"
            " accepted INTEGER, attrs TEXT)"
        )
        self.db.execute("CREATE TABLE answers (id INTEGER PRIMARY KEY, parent INTEGER, score INTEGER, body BLOB)")
        self.db.execute("BEGIN")
        self._answers: list[tuple] = []
        self.duplicate_answers = 0  # answer rows whose id was already stored

    def add_question(self, question: _Question) -> bool:
        """False when a question with this id is already stored (a duplicate row)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO questions VALUES (?, ?, ?, ?, ?, ?)",
            (
                question.id,
                question.title,
                _pack(question.body),
                question.score,
                question.accepted_id,
                json.dumps(question.attrs, sort_keys=True),
            ),
        )
        return cursor.rowcount == 1

    def add_answer(self, parent: int, answer: _Answer) -> None:
        self._answers.append((answer.id, parent, answer.score, _pack(answer.body)))
        if len(self._answers) >= _INSERT_BATCH:
            self._flush()

    def _flush(self) -> None:
        """Insert the buffered answers, counting those whose id is already stored."""
        before = self.db.total_changes
        self.db.executemany("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?)", self._answers)
        self.duplicate_answers += len(self._answers) - (self.db.total_changes - before)
        self._answers = []

    def finish_loading(self) -> None:
        self._flush()
        self.db.execute("COMMIT")
        # Built once after the load (faster than maintaining it row by row); SQLite sorts on disk.
        self.db.execute("CREATE INDEX answers_by_parent ON answers (parent, id)")

    def threads(self) -> Iterator[tuple[_Question | None, int, list[_Answer]]]:
        """Merge questions (by id) with answers (by parent): ``(question, parent id, answers)``.

        A question without answers comes with ``[]``; answers whose parent is not a stored question come
        with ``question=None`` (orphans).
        """
        questions = self.db.execute("SELECT id, title, body, score, accepted, attrs FROM questions ORDER BY id")
        answers = self.db.cursor().execute(
            "SELECT parent, id, score, body FROM answers INDEXED BY answers_by_parent ORDER BY parent, id"
        )
        pending = answers.fetchone()
        for qid, title, body, score, accepted, attrs in questions:
            orphans: dict[int, list[_Answer]] = {}
            while pending is not None and pending[0] < qid:
                orphans.setdefault(pending[0], []).append(_Answer(pending[1], pending[2], ""))
                pending = answers.fetchone()
            for parent, group in orphans.items():
                yield None, parent, group
            mine: list[_Answer] = []
            while pending is not None and pending[0] == qid:
                mine.append(_Answer(pending[1], pending[2], _unpack(pending[3])))
                pending = answers.fetchone()
            yield _Question(qid, title, _unpack(body), score, accepted, json.loads(attrs)), qid, mine
        while pending is not None:
            parent = pending[0]
            group = []
            while pending is not None and pending[0] == parent:
                group.append(_Answer(pending[1], pending[2], ""))
                pending = answers.fetchone()
            yield None, parent, group

    def close(self) -> None:
        self.db.close()


class _SiteIngest:
    """One dump: rows into the store, then threads out to ``on_kept`` / ``on_dropped``."""

    def __init__(self, site: str, per_question: int, funnel: Funnel, on_kept: Emit, on_dropped: Emit):
        self.site = site
        self.per_question = per_question
        self.funnel = funnel
        self.on_kept = on_kept
        self.on_dropped = on_dropped
        self.rows: Counter = Counter()
        self.answers: Counter = Counter()
        self.documents = 0
        self.with_accepted = 0
        self.unknown_type_ids: set[int] = set()  # rows of unknown post type: their answers are told from orphans

    def drop(self, qid: str, title: str, body: str, reason: str, detail: str, attrs: dict) -> None:
        self.funnel.drop(reason)
        self.on_dropped(_dropped_question(self.site, qid, title, body, reason, detail, attrs))

    def read_row(self, attrs: dict[str, str], store: _ThreadStore) -> None:
        self.rows["read"] += 1
        try:
            post_id = _int(attrs, "Id")
            post_type = _int(attrs, "PostTypeId")
        except ValueError as err:
            self.rows["malformed"] += 1
            self.drop(
                attrs.get("Id", "?"), attrs.get("Title", ""), attrs.get("Body", ""), "malformed_row", str(err), attrs
            )
            return
        if post_type == QUESTION:
            self.rows["questions"] += 1
            self.read_question(post_id, attrs, store)
        elif post_type == ANSWER:
            self.rows["answers"] += 1
            self.read_answer(post_id, attrs, store)
        elif post_type in OTHER_POST_TYPES:  # tag wikis, moderator nominations, ...: not Q&A
            self.rows["other_types"] += 1
        else:
            self.rows["unknown_post_type"] += 1
            self.unknown_type_ids.add(post_id)
            detail = f"PostTypeId={post_type} is none of the post types the dumps define (1-17)"
            self.drop(str(post_id), attrs.get("Title", ""), attrs.get("Body", ""), "unknown_post_type", detail, attrs)

    def read_question(self, post_id: int, attrs: dict, store: _ThreadStore) -> None:
        title, body = attrs.get("Title"), attrs.get("Body")
        try:
            score = _int(attrs, "Score")
            if title is None or body is None:
                raise ValueError("missing " + ("Title" if title is None else "Body"))
        except ValueError as err:
            self.drop(str(post_id), title or "", body or "", "malformed_row", str(err), attrs)
            return
        if not has_text(body) or not title.strip():
            self.drop(
                str(post_id), title, body, "empty_body", "question has no title or no body text (deleted?)", attrs
            )
            return
        kept_attrs = {key: attrs[key] for key in _META_ATTRS if key in attrs}
        question = _Question(post_id, title.strip(), body, score, _optional_int(attrs, "AcceptedAnswerId"), kept_attrs)
        if not store.add_question(question):
            self.drop(str(post_id), title, body, "duplicate_id", f"question {post_id} appears twice", attrs)

    def read_answer(self, post_id: int, attrs: dict, store: _ThreadStore) -> None:
        try:
            parent = _int(attrs, "ParentId")
            score = _int(attrs, "Score")
            body = attrs["Body"]
        except (ValueError, KeyError):
            self.answers["malformed"] += 1
            return
        if not has_text(body):
            self.answers["empty_body"] += 1
            return
        store.add_answer(parent, _Answer(post_id, score, body))

    def emit_threads(self, store: _ThreadStore) -> None:
        for question, parent, answers in store.threads():
            if question is None:
                outcome = "parent_unknown_post_type" if parent in self.unknown_type_ids else "orphan"
                self.answers[outcome] += len(answers)
                continue
            chosen = select_answers(question, answers, self.per_question)
            self.answers["used"] += len(chosen)
            self.answers["not_chosen"] += len(answers) - len(chosen)
            if not chosen:
                detail = (
                    "no answer with text"
                    if not answers
                    else f"{len(answers)} answers but none accepted, and answers_per_question is 0"
                )
                self.drop(str(parent), question.title, question.body, "no_answer", detail, question.attrs)
                continue
            self.funnel.keep()
            doc = question_doc(self.site, question, chosen, len(answers))
            self.documents += 1
            self.with_accepted += chosen[0].id == question.accepted_id
            self.on_kept(doc)


def question_doc(site: str, question: _Question, chosen: list[_Answer], answer_total: int) -> dict:
    """The Markdown document of one question and its chosen answers (accepted first), with its meta."""
    attrs = question.attrs
    parts = [f"# {question.title}", html_to_markdown(question.body)]
    accepted = bool(chosen) and chosen[0].id == question.accepted_id
    for i, answer in enumerate(chosen):
        parts.append("## Accepted answer" if (i == 0 and accepted) else "## Answer")
        parts.append(html_to_markdown(answer.body))
    text = "\n\n".join(part for part in parts if part)
    bodies = [question.body] + [a.body for a in chosen]
    meta: dict[str, Any] = {
        "site": site,
        "question_id": question.id,
        "score": question.score,
        "view_count": _optional_int(attrs, "ViewCount"),
        "answer_count": answer_total,
        "comment_count": _optional_int(attrs, "CommentCount"),
        "answer_ids": [a.id for a in chosen],
        "answer_scores": [a.score for a in chosen],
        "accepted": accepted,
        "tags": parse_tags(attrs.get("Tags")),
        "creation_date": attrs.get("CreationDate", ""),
        "last_activity_date": attrs.get("LastActivityDate", ""),
        "closed": bool(attrs.get("ClosedDate")),
        "closed_date": attrs.get("ClosedDate", ""),
        "has_code": any("<pre" in body for body in bodies),
        "license": attrs.get("ContentLicense"),
    }
    return make_doc(text, SOURCE, meta, id=content_id(SOURCE, site, str(question.id)))


def _check_rows(name: str, rows: dict) -> None:
    """Every row is a question, an answer, another post type or malformed; every answer is accounted for."""
    kinds = sum(rows.get(key, 0) for key in ("questions", "answers", "other_types", "unknown_post_type", "malformed"))
    if kinds != rows["read"]:
        raise AssertionError(f"{name}: row kinds {kinds} != rows read {rows['read']}")
    answers = sum(rows["answers_detail"].values())
    if answers != rows.get("answers", 0):
        raise AssertionError(f"{name}: answers accounted {answers} != answer rows {rows.get('answers', 0)}")


def stream_dump(
    path: str | Path,
    on_kept: Emit,
    on_dropped: Emit,
    answers_per_question: int,
    funnel: Funnel | None = None,
    work_dir: str | Path | None = None,
) -> dict:
    """Read one dump (``Posts.xml`` or a site ``.7z``), handing each document and dropped record to the callbacks.

    Documents come in question-id order; dropped records in row order, then the questions without answers in
    id order. Returns the row accounting (``read``, ``questions``, ``answers``, ``answers_detail``, ...).
    ``answers_per_question`` counts the answers besides the accepted one.
    """
    if answers_per_question < 0:
        raise InputError(None, f"text.stackexchange.answers_per_question must be >= 0, got {answers_per_question}")
    path = Path(path)
    funnel = funnel if funnel is not None else Funnel(SOURCE)
    site = _SiteIngest(site_from_path(path), answers_per_question, funnel, on_kept, on_dropped)
    with tempfile.TemporaryDirectory(prefix="se-ingest-", dir=work_dir) as scratch:
        store = _ThreadStore(Path(scratch))
        try:
            for attrs in iter_rows(path):
                site.read_row(attrs, store)
            store.finish_loading()
            site.answers["duplicate_id"] = store.duplicate_answers
            site.emit_threads(store)
        finally:
            store.close()
    rows = {"read": 0, **dict(sorted(site.rows.items()))}  # "read" is there even when the dump has no rows
    rows["answers_detail"] = {key: site.answers.get(key, 0) for key in ANSWER_OUTCOMES}
    name = f"{path}:Posts.xml" if is_7z(path) else str(path)
    _check_rows(name, rows)
    if rows["read"] == 0:
        log.warning("%s: the dump has no rows (an empty <posts> element): no documents from it", name)
    rows["documents_with_accepted_answer"] = site.with_accepted
    log.info("%s: %d rows, %d questions -> %d documents", name, rows["read"], rows.get("questions", 0), site.documents)
    return rows


def parse_dump(path: str | Path, answers_per_question: int, funnel: Funnel | None = None, work_dir=None):
    """One dump into lists: returns (documents, dropped records, row accounting) and fills ``funnel``."""
    docs: list[dict] = []
    dropped: list[dict] = []
    rows = stream_dump(path, docs.append, dropped.append, answers_per_question, funnel, work_dir)
    return docs, dropped, rows


def _ingest(dumps, answers_per_question: int, on_kept: Emit, on_dropped: Emit, work_dir=None) -> dict:
    if not dumps:
        raise InputError(None, "text.stackexchange.dumps is empty: name at least one Posts.xml or site .7z")
    funnel = Funnel("ingest_stackexchange")
    per_site = {}
    with_accepted = 0
    for path in dumps:
        before = funnel.to_dict()
        kept_before = funnel.kept
        rows = stream_dump(path, on_kept, on_dropped, answers_per_question, funnel, work_dir)
        with_accepted += rows.pop("documents_with_accepted_answer")
        site = site_from_path(path)
        if site in per_site:
            raise InputError(path, f"two dumps of the same site {site!r} in text.stackexchange.dumps")
        per_site[site] = {
            "path": str(path),
            "rows": rows,
            "questions_read": funnel.read - before["read"],
            "documents": funnel.kept - kept_before,
        }
    funnel.extra["sites"] = per_site
    funnel.extra["answers_per_question"] = answers_per_question
    funnel.extra["documents_with_accepted_answer"] = with_accepted
    return funnel.to_dict()


def ingest_stackexchange(settings: StackExchangeSettings):
    """All of ``settings.dumps``, in the order given, into lists: returns (documents, dropped records, stats)."""
    docs: list[dict] = []
    dropped: list[dict] = []
    stats = _ingest(settings.dumps, settings.answers_per_question, docs.append, dropped.append, settings.work_dir)
    return docs, dropped, stats


class ParquetDocStream:
    """Documents (or dropped records) written to Parquet row group by row group, so memory stays flat.

    Same columns and writer settings as :func:`abacus_repro.io.write_docs` (zstd, no dictionary, no
    statistics: same rows -> same bytes); written to a temporary name and renamed when closed.
    """

    def __init__(self, path: str | Path, dropped: bool = False, rows_per_group: int = 4096):
        self.path = Path(path)
        self.schema = DROPPED_SCHEMA if dropped else DOC_SCHEMA
        self.rows_per_group = rows_per_group
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self.writer = pq.ParquetWriter(
            self.tmp, self.schema, compression="zstd", use_dictionary=False, write_statistics=False
        )
        self.buffer: list[dict] = []
        self.rows = 0

    def add(self, doc: dict) -> None:
        self.buffer.append({name: (doc.get(name) if doc.get(name) is not None else "") for name in self.schema.names})
        if len(self.buffer) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.rows += len(self.buffer)
            self.buffer = []

    def close(self) -> int:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)
        return self.rows

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def ingest_stackexchange_to_files(
    settings: StackExchangeSettings, kept_path: str | Path, dropped_path: str | Path
) -> dict:
    """All of ``settings.dumps`` straight into two Parquet files (documents, dropped records); returns the stats.

    The thread store is a scratch SQLite file in ``settings.work_dir`` (null: $TMPDIR), about half the dump's size.
    """
    kept = ParquetDocStream(kept_path)
    dropped = ParquetDocStream(dropped_path, dropped=True)
    try:
        stats = _ingest(settings.dumps, settings.answers_per_question, kept.add, dropped.add, settings.work_dir)
    except BaseException:
        kept.abort()
        dropped.abort()
        raise
    kept.close()
    dropped.close()
    return stats


def ingest_stackexchange_rule(settings: StackExchangeSettings, paths: RulePaths) -> dict:
    """Rule ingest_stackexchange: Posts.xml dumps or site .7z archives -> question-and-answer documents (+ dropped,
    stats), streamed: documents go to Parquet as they are made."""
    dumps = paths.input["dumps"]
    settings = settings.model_copy(update={"dumps": [dumps] if isinstance(dumps, str) else list(dumps)})
    stats = ingest_stackexchange_to_files(settings, paths.output["kept"], paths.output["dropped"])
    write_json(paths.output["stats"], stats)
    log.info("kept %d threads, dropped %s", stats["kept"], stats["dropped"])
    return stats
