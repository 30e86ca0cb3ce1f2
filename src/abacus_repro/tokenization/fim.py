"""Fill-in-the-middle (FIM) at packing time: StarCoder's document transformation, on code documents only.

A transformed document is cut at two points into prefix, middle and suffix and laid out in one of two orders,
each ending, like every document, with the ``</s>`` packing appends:

* PSM: ``<fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle``;
* SPM: ``<fim_suffix> suffix <fim_prefix> prefix <fim_middle> middle``: the order llama.cpp builds for an infill
  prompt when asked for SPM (the server's ``spm_infill``, llama-cpp-python's ``Llama(spm_infill=True)``), so a
  model trained on both orders can be prompted in either. (The FIM paper's and BigCode Megatron's SPM variant,
  ``<fim_prefix><fim_suffix> suffix <fim_middle> prefix middle``, is not used: no llama.cpp prompt builds it.)

``pack.fim.level`` says where the cut points are drawn: ``character`` (StarCoder's and the FIM paper's choice) on
the document's text, each part then tokenized on its own, so a cut may fall inside what would have been one token;
``token`` on the document's token ids, so the three parts concatenate to exactly the untransformed ids. With a
SentencePiece tokenizer that adds a dummy ``▁`` prefix, character-level parts each carry it, as the parts of an
infill prompt do when llama.cpp or transformers tokenize ``<fim_prefix>{prefix}<fim_suffix>...`` as one string.

Every choice (transform or not, PSM or SPM, the two cut points) comes from a generator seeded with the run's seed
and the document's id alone: the same documents give the same rows whatever the order or the number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..settings import FimSettings

# Only source code is transformed: the code pipeline writes its documents with this source.
CODE_SOURCE = "code"
PSM, SPM = "psm", "spm"


@dataclass(frozen=True)
class FimPlan:
    """What packing needs to transform documents: the `pack.fim` settings and the run's seed."""

    settings: FimSettings
    seed: int


@dataclass(frozen=True)
class FimIds:
    """The tokenizer's ids of the three FIM markers."""

    prefix: int
    middle: int
    suffix: int


@dataclass(frozen=True)
class FimCut:
    """One document's transformation: its order and the cut points (start, end) of the middle."""

    mode: str  # PSM or SPM
    start: int
    end: int


@dataclass
class FimCounts:
    """How many documents were code (and so candidates) and how many of them became PSM or SPM."""

    code_documents: int = 0
    by_mode: dict[str, int] = field(default_factory=lambda: {PSM: 0, SPM: 0})

    def as_meta(self, plan: FimPlan) -> dict:
        return {
            "rate": plan.settings.rate,
            "spm_rate": plan.settings.spm_rate,
            "level": plan.settings.level,
            "code_documents": self.code_documents,
            "psm_documents": self.by_mode[PSM],
            "spm_documents": self.by_mode[SPM],
        }


def fim_ids(tokenizer) -> FimIds:
    """The marker ids; a tokenizer without them cannot build FIM documents (an error naming what is missing)."""
    # Imported here: the model package imports torch, which the mixture stage (importing this package) lacks.
    from ..model.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

    vocab = tokenizer.get_vocab()
    missing = [token for token in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX) if token not in vocab]
    if missing:
        raise InputError(
            getattr(tokenizer, "name_or_path", None) or None,
            f"pack.fim.rate > 0 needs the FIM tokens, and the tokenizer lacks {missing} "
            "(a tokenizer made before FIM was added: re-run train_tokenizer)",
        )
    return FimIds(prefix=vocab[FIM_PREFIX], middle=vocab[FIM_MIDDLE], suffix=vocab[FIM_SUFFIX])


def is_code(doc) -> bool:
    return doc.get("source") == CODE_SOURCE


def draw_cut(plan: FimPlan, doc_id: str, length: int) -> FimCut | None:
    """Whether the document of ``length`` units (characters or tokens) is transformed, and how.

    Two cut points are drawn uniformly from 0..length and sorted, as StarCoder does, so any part may be empty.
    """
    settings = plan.settings
    if settings.rate <= 0 or length == 0:
        return None
    # A string seed is hashed with sha512 inside random.seed: stable across processes and Python builds.
    rng = random.Random(f"fim\0{plan.seed}\0{doc_id}")
    if rng.random() >= settings.rate:
        return None
    mode = SPM if rng.random() < settings.spm_rate else PSM
    start, end = sorted((rng.randint(0, length), rng.randint(0, length)))
    return FimCut(mode=mode, start=start, end=end)


def split_text(text: str, cut: FimCut) -> tuple[str, str, str]:
    """(prefix, middle, suffix) of a text."""
    return text[: cut.start], text[cut.start : cut.end], text[cut.end :]


def layout(mode: str, prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int], ids: FimIds) -> list[int]:
    """The transformed document's ids (without the ``</s>`` packing appends)."""
    if mode == PSM:
        return [ids.prefix, *prefix, ids.suffix, *suffix, ids.middle, *middle]
    return [ids.suffix, *suffix, ids.prefix, *prefix, ids.middle, *middle]


def transform_tokens(ids: Sequence[int], cut: FimCut, marker_ids: FimIds) -> list[int]:
    """Token level: the document's own ids cut at the drawn token positions."""
    return layout(cut.mode, ids[: cut.start], ids[cut.start : cut.end], ids[cut.end :], marker_ids)
