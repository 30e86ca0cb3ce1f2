"""Decontamination: drop training documents that share long word n-grams with the evaluation sets.

Beyond the recipe (users ask for it): a model scored on HumanEval, MBPP, LiveCodeBench or the general benchmarks
must not have trained on their problems. Every benchmark file found under the configured paths (JSON, JSON
lines, optionally gzipped, CSV, plain text) is split into items (a record, a CSV row, a paragraph); an item's
string fields are normalised into words and every run of ``ngram`` consecutive words is indexed. A training
document is contaminated when it shares at least ``min_matches`` of those n-grams with one item.

Words: lower-cased runs of letters and digits, with every CJK character a word of its own (C-Eval and CMMLU
have no spaces), so whitespace, punctuation and formatting changes do not hide a copy. The default n = 13 is
the length GPT-3's and later contamination studies use. Items shorter than n words cannot be matched this way
and are counted as such per benchmark, so the report says what was not checked.

N-grams are hashed deterministically (each word's blake2b digest, then Python's tuple hash of the integers,
which is not salted per process), so the same inputs drop the same documents in every run.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InputError
from ..io import path_list, read_many, write_docs, write_json
from ..rules import RulePaths
from ..settings import DecontaminationSettings, Settings

log = logging.getLogger(__name__)

REASON = "eval_ngram_overlap"
# Fields that identify or execute an item rather than state it (ids, entry points, test-input vectors).
SKIP_FIELDS = frozenset(
    {"task_id", "id", "entry_point", "base_input", "plus_input", "atol", "canary", "source_file", "test_imports"}
)
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".txt", ".txt.gz")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def words(text: str) -> list[str]:
    """Normalised words: lower-case letter/digit runs; each CJK character alone."""
    return _WORD.findall(text.lower())


@dataclass
class EvalItem:
    benchmark: str  # the file, relative to its configured root (e.g. code_eval/HumanEval.jsonl.gz)
    item: str  # the record's id, or its index / line within the file
    text: str


def _strings(value: Any, key: str | None = None) -> Iterator[str]:
    if key in SKIP_FIELDS:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for name in sorted(value):
            yield from _strings(value[name], str(name))
    elif isinstance(value, list):
        for entry in value:
            yield from _strings(entry)


def _item_id(record: Any, index: int) -> str:
    if isinstance(record, Mapping):
        for key in ("task_id", "id", "question_id"):
            if record.get(key) not in (None, ""):
                return str(record[key])
    return f"#{index}"


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read evaluation file ({err})") from err


def _records(path: Path, text: str) -> list[tuple[str, str]]:
    """(item id, item text) for one evaluation file."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(path, f"line {number} is not JSON ({err})") from err
        return [(_item_id(r, i), "\n".join(_strings(r))) for i, r in enumerate(records)]
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(path, f"not valid JSON ({err})") from err
        if isinstance(data, Mapping):  # BIG-Bench style {"examples": [...]} or one record
            lists = [value for value in data.values() if isinstance(value, list)]
            data = lists[0] if len(lists) == 1 else [data]
        return [(_item_id(r, i), "\n".join(_strings(r))) for i, r in enumerate(data)]
    if name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header, body = (rows[0], rows[1:]) if rows else ([], [])
        keep = [i for i, column in enumerate(header) if column.strip().lower() not in SKIP_FIELDS | {"answer"}]
        return [(f"row {n}", "\n".join(row[i] for i in keep if i < len(row))) for n, row in enumerate(body, 1)]
    # Plain text: one item per paragraph, named by its first line number.
    items, start, lines = [], 1, []
    for number, line in enumerate(text.splitlines() + [""], 1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            items.append((f"line {start}", "\n".join(lines)))
            lines = []
    return items


def find_eval_files(roots: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, name relative to its root's parent) for every evaluation file under the roots, sorted."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append((root, root.name))
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.name.endswith(SUFFIXES):
                    found.append((path, str(path.relative_to(root.parent))))
    return found


def load_eval_items(roots: Sequence[str | Path]) -> tuple[list[EvalItem], list[str]]:
    """Every item of every evaluation file under the roots; also the roots that do not exist."""
    missing = [str(root) for root in roots if not Path(root).exists()]
    items = []
    for path, name in find_eval_files(roots):
        items.extend(EvalItem(name, item, text) for item, text in _records(path, _read_text(path)))
    return items, missing


def informative(gram: Sequence[str]) -> bool:
    """An n-gram worth indexing: not only numbers, and at least half its words distinct.

    Number tables (primes, test vectors of zeros) and repeated tokens recur everywhere in code; matching on them
    would drop documents that merely share a list of small integers with a test case.
    """
    if all(token.isdigit() for token in gram):
        return False
    return len(set(gram)) * 2 >= len(gram)


class _WordIds:
    """Stable 64-bit integers for the evaluation sets' words (blake2b): n-gram hashes then cost one tuple hash."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def add(self, tokens: Iterable[str]) -> list[int]:
        out = []
        for token in tokens:
            value = self.ids.get(token)
            if value is None:
                value = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
                self.ids[token] = value
            out.append(value)
        return out

    def lookup(self, tokens: Iterable[str]) -> list[int | None]:
        """Ids of known words; None for a word no evaluation item has (no n-gram through it can match)."""
        return [self.ids.get(token) for token in tokens]


@dataclass
class NgramIndex:
    """n-gram hash -> the first evaluation item that has it; per-benchmark coverage counts."""

    n: int
    items: list[EvalItem] = field(default_factory=list)
    table: dict[int, int] = field(default_factory=dict)
    coverage: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    _ids: _WordIds = field(default_factory=_WordIds)

    def add(self, item: EvalItem) -> None:
        index = len(self.items)
        self.items.append(item)
        ids = self._ids.add(words(item.text))
        stats = self.coverage[item.benchmark]
        stats["items"] += 1
        if len(ids) < self.n:
            stats["items_too_short"] += 1
            return
        tokens = words(item.text)
        for start in range(len(ids) - self.n + 1):
            if informative(tokens[start : start + self.n]):
                self.table.setdefault(hash(tuple(ids[start : start + self.n])), index)
        stats["items_indexed"] += 1

    def matches(self, text: str) -> Counter:
        """Evaluation item index -> shared n-grams (each distinct n-gram of the text counted once).

        Only windows made entirely of words the evaluation sets contain are hashed: in code most windows hold
        an identifier no benchmark has, so the scan skips them at the cost of a dictionary lookup per word.
        """
        ids = self._ids.lookup(words(text))
        hits: Counter = Counter()
        seen: set[int] = set()
        run = 0  # known words ending at the current position
        for end, value in enumerate(ids, 1):
            run = run + 1 if value is not None else 0
            if run < self.n:
                continue
            key = hash(tuple(ids[end - self.n : end]))
            if key in seen:
                continue
            seen.add(key)
            item = self.table.get(key)
            if item is not None:
                hits[item] += 1
        return hits


def build_index(roots: Sequence[str | Path], n: int) -> tuple[NgramIndex, list[str]]:
    if n < 1:
        raise ValueError(f"decontamination ngram must be >= 1, got {n}")
    items, missing = load_eval_items(roots)
    index = NgramIndex(n)
    for item in items:
        index.add(item)
    log.info(
        "decontamination index: %d items from %d files, %d distinct %d-grams (missing roots: %s)",
        len(items),
        len(index.coverage),
        len(index.table),
        n,
        missing or "none",
    )
    return index, missing


def contamination(index: NgramIndex, text: str, min_matches: int) -> tuple[EvalItem, int] | None:
    """The evaluation item sharing the most n-grams with the text, if it shares at least ``min_matches``."""
    hits = index.matches(text)
    if not hits:
        return None
    item, count = min(hits.items(), key=lambda pair: (-pair[1], pair[0]))
    return (index.items[item], count) if count >= min_matches else None


def scan_sources(
    sources: Mapping[str, Sequence[tuple[Mapping[str, Any], str]]], index: NgramIndex, min_matches: int
) -> tuple[list[dict], dict]:
    """Check every (document, training text) of every source; returns the dropped records and the statistics.

    Dropped records keep the document's columns plus ``reason`` and ``detail`` (benchmark, item, shared
    n-grams). Per source: read = kept + dropped.
    """
    dropped, per_source = [], {}
    by_benchmark: Counter = Counter()
    for name in sorted(sources):
        read = kept = 0
        source_benchmarks: Counter = Counter()
        for doc, text in tqdm(sources[name], desc=f"decontaminate {name}", unit="doc", mininterval=5.0):
            read += 1
            found = contamination(index, text, min_matches) if index.table else None
            if found is None:
                kept += 1
                continue
            item, count = found
            source_benchmarks[item.benchmark] += 1
            dropped.append(
                {
                    **{key: doc.get(key) for key in ("id", "text", "source", "meta")},
                    "reason": REASON,
                    "detail": f"{name}: {item.benchmark}:{item.item} ({count} shared {index.n}-grams)",
                }
            )
        per_source[name] = {
            "read": read,
            "kept": kept,
            "dropped": {REASON: read - kept} if read - kept else {},
            "by_benchmark": dict(sorted(source_benchmarks.items())),
        }
        by_benchmark.update(source_benchmarks)
    stats = {
        "name": "decontamination",
        "ngram": index.n,
        "min_matches": min_matches,
        "read": sum(entry["read"] for entry in per_source.values()),
        "kept": sum(entry["kept"] for entry in per_source.values()),
        "dropped": {REASON: len(dropped)} if dropped else {},
        "by_benchmark": dict(sorted(by_benchmark.items())),
        "sources": per_source,
        "benchmarks": {name: dict(sorted(counts.items())) for name, counts in sorted(index.coverage.items())},
        "distinct_ngrams": len(index.table),
    }
    return dropped, stats


def training_text(doc: Mapping[str, Any]) -> str:
    """What a document contributes to training: an SFT pair's instruction and response, else its text."""
    meta = json.loads(doc["meta"]) if doc.get("meta") else {}
    if isinstance(meta.get("instruction"), str) and isinstance(meta.get("response"), str):
        return f"{meta['instruction']}\n{meta['response']}"
    return doc.get("text") or ""


def decontaminate_sources(
    sources: Mapping[str, Sequence[str]], eval_roots: Sequence[str | Path], settings: DecontaminationSettings
) -> tuple[list[dict], dict]:
    """Scan every document of the named sources (lists of Parquet shards) against the evaluation files.

    ``settings``: the config's ``mixture.decontamination`` section (enabled, ngram, min_matches). Disabled, or
    with no evaluation file found, every document is kept and the statistics say why.
    """
    enabled = settings.enabled
    n = settings.ngram
    min_matches = settings.min_matches
    index, missing = build_index(eval_roots, n) if enabled else (NgramIndex(n), [])
    docs = {name: [(doc, training_text(doc)) for doc in read_many(paths)] for name, paths in sources.items()}
    dropped, stats = scan_sources(docs, index, min_matches)
    stats["enabled"] = enabled
    # By name only: the stats are a data output, byte-identical wherever the evaluation data is mounted (the log
    # names the full paths).
    log.info("decontamination: evaluation roots %s (missing: %s)", [str(r) for r in eval_roots], missing or "none")
    stats["eval_roots"] = [Path(root).name for root in eval_roots]
    stats["missing_eval_roots"] = [Path(root).name for root in missing]
    if enabled and not index.table:
        log.warning("decontamination: no evaluation n-grams under %s; nothing can be matched", list(eval_roots))
        stats["note"] = "no evaluation files found: nothing was checked"
    return dropped, stats


# The source groups rule decontaminate checks: the pretraining sources, or the SFT data set.
SOURCE_GROUPS = {"pretrain": ("code", "math", "text"), "sft": ("sft",)}


class DecontaminateJob(Settings):
    """What rule decontaminate reads: ``mixture.decontamination``, and the evaluation roots that do not exist
    (named in the statistics; the roots that exist are the rule's ``eval_data`` inputs)."""

    decontamination: DecontaminationSettings
    absent_eval_data: list[str]


def run_decontaminate(settings: DecontaminateJob, paths: RulePaths) -> dict:
    """Rule decontaminate: list every training document of a source group sharing long n-grams with an eval set."""
    names = SOURCE_GROUPS[paths.wildcards["group"]]
    sources = {name: path_list(paths.input[name]) for name in names}
    eval_roots = [*path_list(paths.input["eval_data"]), *settings.absent_eval_data]
    dropped, stats = decontaminate_sources(sources, eval_roots, settings.decontamination)
    write_docs(paths.output["dropped"], dropped, dropped=True)
    write_json(paths.output["stats"], stats)
    log.info("decontamination: %d of %d documents dropped %s", len(dropped), stats["read"], stats["by_benchmark"])
    return stats
