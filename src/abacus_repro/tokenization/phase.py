"""The tokenize rule's entry: a phase's documents -> packed rows (tokens, segments, loss_mask .npy + meta.json)."""

from __future__ import annotations

import logging

from pydantic import Field

from ..io import path_list, read_docs
from ..rules import RulePaths
from ..settings import PackSettings, Settings
from .fim import FimPlan
from .pack import PackedData, load_tokenizer, tokenize_and_pack, write_packed

log = logging.getLogger(__name__)


class TokenizeJob(Settings):
    """What the tokenize job reads: the run's seed (it seeds the FIM draws) and the `pack` section."""

    seed: int = Field(ge=0)
    pack: PackSettings


def tokenize_phase(settings: TokenizeJob, paths: RulePaths) -> PackedData:
    """Rule tokenize: the phase's documents (``docs``), less those the decontamination step listed
    (``contaminated``: the SFT phase's; the pretraining mixtures left them out already), packed into rows of
    ``pack.seq_len``; the pretraining phases FIM-transform code documents as ``pack.fim`` says, the SFT phase
    marks only responses as targets."""
    phase = paths.wildcards["phase"]
    docs_path = paths.input["docs"]
    docs = read_docs(docs_path)
    contaminated = frozenset(
        doc["id"] for path in path_list(paths.input["contaminated"]) for doc in read_docs(path, columns=["id"])
    )
    kept = [doc for doc in docs if doc["id"] not in contaminated]
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
    packed.meta["decontaminated_docs"] = len(docs) - len(kept)
    output = paths.output
    write_packed(packed, output["tokens"], output["segments"], output["loss_mask"], output["meta"])
    log.info("tokenized %s: %s", phase, packed.meta)
    return packed
