"""The held-out validation split: documents of each source (code, math, text, SFT) that no phase trains on.

Every variant of the recipe (schedule, attention, seed) is scored on the same documents, so the split depends on
nothing but the documents' ids and ``mixture.validation``: a source's documents are ranked by sha256 of
``validation:<id>`` and the first ceil(fraction x count) are held out, at most ``max_documents`` and never all of
them (a source of one document keeps it for training). No seed enters,
so runs with different seeds compare on the same rows. Decontaminated documents and empty texts (which no mixture
takes either) are never picked. The mixtures and the SFT phase leave the held-out ids out.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

from ..io import path_list, read_docs, read_many, write_docs, write_json
from ..rules import RulePaths
from ..settings import VALIDATION_SOURCES, ValidationSplitSettings

log = logging.getLogger(__name__)

__all__ = ["VALIDATION_SOURCES", "choose_validation", "held_out_count", "read_ids", "run_validation_split"]


def _rank_key(doc_id: str) -> str:
    return hashlib.sha256(f"validation:{doc_id}".encode()).hexdigest()


def held_out_count(n_docs: int, settings: ValidationSplitSettings) -> int:
    """How many of a source's ``n_docs`` documents are held out: ceil(fraction x n_docs), at most max_documents,
    and never the last one (a tiny source keeps a document to train on)."""
    return max(0, min(settings.max_documents, math.ceil(n_docs * settings.fraction), n_docs - 1))


def choose_validation(docs: Sequence[Mapping], settings: ValidationSplitSettings) -> list[Mapping]:
    """The held-out documents of one source, in hash order (the same whatever the input order)."""
    ranked = sorted(docs, key=lambda doc: (_rank_key(doc["id"]), doc["id"]))
    return ranked[: held_out_count(len(ranked), settings)]


def _eligible(doc: Mapping, source: str, excluded: frozenset[str]) -> bool:
    if doc["id"] in excluded:
        return False
    # An SFT pair is its meta's instruction and response; any other document is its text.
    return source == "sft" or bool(doc["text"])


def read_ids(paths: Iterable[str]) -> frozenset[str]:
    """The ids of every document in these files (decontamination lists, validation splits)."""
    return frozenset(doc["id"] for path in paths for doc in read_docs(path, columns=["id"]))


def run_validation_split(settings: ValidationSplitSettings, paths: RulePaths) -> dict:
    """Rule validation_split: one source's held-out documents (results/mixture/validation/{source}.parquet)."""
    source = paths.wildcards["source"]
    excluded = read_ids(path_list(paths.input["contaminated"]))
    read = read_many(path_list(paths.input["docs"]))
    docs = [doc for doc in read if _eligible(doc, source, excluded)]
    held_out = choose_validation(docs, settings)
    write_docs(paths.output["docs"], held_out)
    stats = {
        "source": source,
        "fraction": settings.fraction,
        "max_documents": settings.max_documents,
        "read_docs": len(read),
        "eligible_docs": len(docs),
        "validation_docs": len(held_out),
    }
    write_json(paths.output["stats"], stats)
    log.info("validation %s: %d of %d documents held out", source, len(held_out), len(docs))
    return stats
