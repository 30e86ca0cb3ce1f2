"""The tokenize rule's entry: a phase's documents -> packed rows (tokens, segments, loss_mask .npy + meta.json)."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from ..io import path_list, read_docs
from ..rules import RulePaths
from ..settings import PackSettings, Settings
from .fim import FimPlan
from .pack import PackedData, load_tokenizer, tokenize_and_pack, write_packed

log = logging.getLogger(__name__)


def _ids(paths: list[str]) -> frozenset[str]:
    return frozenset(doc["id"] for path in paths for doc in read_docs(path, columns=["id"]))


class TokenizeJob(Settings):
    """What the tokenize job reads: the run's seed (it seeds the FIM draws) and the `pack` section."""

    seed: int = Field(ge=0)
    pack: PackSettings


def tokenize_phase(settings: TokenizeJob, paths: RulePaths) -> PackedData:
    """Rule tokenize: the phase's documents (``docs``), less those the decontamination step listed
    (``contaminated``: the SFT phase's; the pretraining mixtures left them out already) and those of the
    validation split (``held_out``: the SFT phase's, likewise), packed into rows of
    ``pack.seq_len``; the pretraining phases FIM-transform code documents as ``pack.fim`` says, the SFT phase
    marks only responses as targets."""
    phase = paths.wildcards["phase"]
    docs_path = paths.input["docs"]
    docs = read_docs(docs_path)
    contaminated = _ids(path_list(paths.input["contaminated"]))
    held_out = _ids(path_list(paths.input["held_out"]))
    kept = [doc for doc in docs if doc["id"] not in contaminated and doc["id"] not in held_out]
    sft = phase == "sft"
    packed = tokenize_and_pack(
        kept,
        load_tokenizer(paths.input["tokenizer"]),
        settings.pack.seq_len,
        sft=sft,
        source_path=docs_path,
        workers=paths.threads,
        fim=None if sft else FimPlan(settings.pack.fim, settings.seed),
    )
    packed.meta["decontaminated_docs"] = sum(1 for doc in docs if doc["id"] in contaminated)
    packed.meta["validation_docs"] = sum(1 for doc in docs if doc["id"] in held_out and doc["id"] not in contaminated)
    output = paths.output
    write_packed(packed, output["tokens"], output["segments"], output["loss_mask"], output["meta"])
    log.info("tokenized %s: %s", phase, packed.meta)
    return packed


def tokenize_validation(settings: PackSettings, paths: RulePaths) -> PackedData:
    """Rule tokenize_validation: one source's validation documents (``paths.wildcards["source"]``), each scored on
    its first ``pack.seq_len`` tokens: one row per document, so a long file costs one row like a short one and every
    held-out document counts. Tokenized once for every phase and variant; no FIM (the loss is plain left-to-right);
    SFT pairs as in the SFT phase (responses are the targets)."""
    source = paths.wildcards["source"]
    docs_path = paths.input["docs"]
    tokenizer = load_tokenizer(paths.input["tokenizer"])
    sft = source == "sft"
    rows = [
        tokenize_and_pack([doc], tokenizer, settings.seq_len, sft=sft, source_path=docs_path)
        for doc in read_docs(docs_path)
    ]
    packed = first_rows(rows, settings.seq_len, sft)
    output = paths.output
    write_packed(packed, output["tokens"], output["segments"], output["loss_mask"], output["meta"])
    log.info("tokenized validation %s: %s", source, packed.meta)
    return packed


def first_rows(per_document: list[PackedData], seq_len: int, sft: bool) -> PackedData:
    """The first row of each document's own packing (its first ``seq_len`` tokens), stacked; empty ones dropped."""
    kept = [packed for packed in per_document if packed.meta["rows"]]
    tokens = np.stack([packed.tokens[0] for packed in kept]) if kept else np.zeros((0, seq_len), np.int32)
    segments = np.stack([packed.segments[0] for packed in kept]) if kept else np.zeros((0, seq_len), np.int32)
    loss_mask = np.stack([packed.loss_mask[0] for packed in kept]) if kept else np.zeros((0, seq_len), np.uint8)
    meta = {
        "seq_len": seq_len,
        "sft": sft,
        "rows": len(kept),
        "documents": len(kept),
        "skipped_empty": len(per_document) - len(kept),
        "truncated_documents": sum(1 for packed in kept if packed.meta["rows"] > 1),
        "tokens": int((segments >= 0).sum()),
        "target_tokens": int(loss_mask.sum()),
        "fim": None,
    }
    return PackedData(tokens=tokens, segments=segments, loss_mask=loss_mask, meta=meta)
