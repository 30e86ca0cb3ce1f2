"""Stand-ins for the paper run's raw inputs, in their published layouts, so config/rehearsal.yaml can be the paper
config with only sizes, paths and endpoints changed and still read every input through the paper's code path.

* a code dump in The Stack v2's per-file layout (``repo_name``, ``path``, ``content``, ``language``, licences),
  built from this machine's own Python installation, as the tiny default's code is;
* OpenWebMath's Parquet layout (``url``, ``text``, ``date``, ``metadata``) and proof-pile-2 algebraic-stack's
  ``.jsonl.zst`` layout (``text``, ``meta``), built from the seeded, verified word problems of ingest/math.py.

Every writer is deterministic: the same arguments give byte-identical files. The checkpoint in MiniCPM-2B's
published layout is made by abacus_repro.model.published_layout (rule rehearsal_checkpoint).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import PositiveInt

from .ingest.code import collect_code
from .ingest.math import generate_problems
from .rules import RulePaths
from .settings import CodeSettings, Settings

log = logging.getLogger(__name__)

# The Stack v2 (bigcode/the-stack-v2-dedup) per-file columns that matter downstream, in its own names.
STACK_COLUMNS = ("blob_id", "repo_name", "path", "language", "detected_licenses", "license_type", "content")
# A fixed date: Parquet files carry no write time, and the stand-ins must be byte-identical across runs.
STAND_IN_DATE = "2023-09-06T00:00:00"


def write_stack_layout_dump(out_path: str | Path, code_settings: CodeSettings, seed: int) -> dict[str, int]:
    """The sampled Python installation (code.max_repos etc.) as one Parquet file in The Stack v2's layout."""
    settings = code_settings.model_copy(update={"source": "python_installation"})
    files, _docs, _stats = collect_code(settings, seed)
    rows = {name: [] for name in STACK_COLUMNS}
    for source_file in files:
        if source_file.raw is None or source_file.error:
            continue  # unreadable here: a dump holds only files that were read
        rows["blob_id"].append(_blob_id(source_file.raw))
        rows["repo_name"].append(f"python/{source_file.repo}")
        rows["path"].append(source_file.path)
        rows["language"].append("Python")
        rows["detected_licenses"].append(["PSF-2.0"] if source_file.repo.startswith("stdlib") else [])
        rows["license_type"].append("permissive" if source_file.repo.startswith("stdlib") else "no_license")
        rows["content"].append(source_file.raw.decode("utf-8", errors="surrogateescape"))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), out_path, compression="zstd")
    return {"files": len(rows["path"]), "repositories": len(set(rows["repo_name"]))}


def _blob_id(raw: bytes) -> str:
    import hashlib

    # Git's blob id, as The Stack v2 names its files.
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()


def write_openwebmath_layout(out_path: str | Path, n_documents: int, seed: int) -> int:
    """Seeded word problems as web pages in OpenWebMath's Parquet columns."""
    docs, _stats = generate_problems(n_documents, seed)
    rows = {"url": [], "text": [], "date": [], "metadata": []}
    for doc in docs:
        meta = json.loads(doc["meta"])
        rows["url"].append(f"https://rehearsal.invalid/problems/{doc['id']}")
        rows["text"].append(doc["text"])
        rows["date"].append(STAND_IN_DATE)
        rows["metadata"].append(json.dumps({"template": meta["template"]}, sort_keys=True))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), out_path, compression="zstd")
    return len(docs)


def write_algebraic_stack_layout(out_path: str | Path, n_documents: int, seed: int) -> int:
    """Seeded worked solutions as source files in proof-pile-2 algebraic-stack's ``.jsonl.zst`` records."""
    import zstandard

    docs, _stats = generate_problems(n_documents, seed)
    lines = []
    for doc in docs:
        meta = json.loads(doc["meta"])
        program = (
            f'"""{meta["question"]}"""\n\n'
            + "".join(f"# {line}\n" for line in meta["solution"].splitlines())
            + f"answer = {meta['answer']}\n"
        )
        record = {"text": program, "meta": {"path": f"{doc['id']}.py", "language": "python"}}
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    out_path.write_bytes(zstandard.ZstdCompressor(level=10).compress(payload))
    return len(lines)


class RehearsalCodeDumpJob(Settings):
    """What rule rehearsal_code_dump reads: the seed and the ``code:`` section (its sampling sizes)."""

    seed: int
    code: CodeSettings


def run_rehearsal_code_dump(settings: RehearsalCodeDumpJob, paths: RulePaths) -> dict[str, int]:
    """Rule rehearsal_code_dump: this machine's Python installation as a code dump in The Stack v2's layout."""
    counts = write_stack_layout_dump(Path(paths.output["dump"]) / "train-00000.parquet", settings.code, settings.seed)
    log.info("stand-in Stack v2 dump: %s", counts)
    return counts


# Each published math layout: its writer and the name of its one shard.
MATH_LAYOUTS = {
    "openwebmath": (write_openwebmath_layout, "train-00000-of-00001.parquet"),
    "algebraic_stack": (write_algebraic_stack_layout, "python0000.jsonl.zst"),
}


class RehearsalMathCorpusJob(Settings):
    """What rule rehearsal_math_corpus reads: the seed, the corpus's published layout and its size (the
    ``max_documents`` of its math.corpus entry)."""

    seed: int
    layout: Literal["openwebmath", "algebraic_stack"]
    documents: PositiveInt


def run_rehearsal_math_corpus(settings: RehearsalMathCorpusJob, paths: RulePaths) -> int:
    """Rule rehearsal_math_corpus: seeded word problems in OpenWebMath's or algebraic-stack's published layout."""
    writer, name = MATH_LAYOUTS[settings.layout]
    written = writer(Path(paths.output["corpus"]) / name, settings.documents, settings.seed)
    log.info("stand-in %s corpus: %d documents", settings.layout, written)
    return written
