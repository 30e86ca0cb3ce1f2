"""Build one phase's training documents so that each source gets its configured share of the token budget.

The recipe (seeds): the cosine phase is 70% code, 10% math, 20% general text; the anneal phase is pretraining
data with the same shares and SFT data at 8:2 (``anneal_sft_fraction``; the other seed says 7:3), and within the
SFT part code and natural-language pairs at 1:1 (``sft_shares``, by the pairs' ``meta.kind``). Documents the
decontamination step listed (shared n-grams with an evaluation set) are left out before sampling and counted.
Shares are shares of *tokens* (counted with the run's own
tokenizer, ``</s>`` included, because that is what a document costs in a training row), not of documents.
A source with fewer tokens than its share is repeated (whole passes, then a seeded partial pass) and the
repeats are counted; a larger one is sampled without replacement, and only as much of it is tokenized as the
sampling reaches (lengths are counted lazily along the seeded order). The tiny ``base`` phase (a stand-in for the
MiniCPM checkpoint the paper starts from) uses the cosine shares.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InputError
from ..io import path_list, read_json, read_many, write_docs, write_json
from ..rules import RulePaths
from ..settings import MixtureSettings, NoSettings, Settings
from ..tokenization import encode_batch, render_chat
from .validation import read_ids

log = logging.getLogger(__name__)

PHASES = ("base", "cosine", "anneal")
SFT_SOURCE = "sft"
SFT_KINDS = ("code", "nl")
# Documents tokenized per call while counting lengths (lazily, along the sampling order).
COUNT_CHUNK = 64
# Filling stops once the gap to a source's target is at most this fraction of it.
FILL_TOLERANCE = 1e-3


# A rule input as a list of paths (one named file arrives as a plain string); the name other stages import.
mixture_paths = path_list


def phase_targets(phase: str, settings: MixtureSettings) -> dict[str, int]:
    """Token target per source for a phase (``settings`` is the config's ``mixture`` section, whose shares
    MixtureSettings has checked: fractions summing to 1)."""
    if phase not in PHASES:
        raise ValueError(f"mixture phase must be one of {PHASES}, got {phase!r}")
    budget = _budget(settings, phase)
    shares = {name: float(value) for name, value in settings.shares.model_dump().items()}
    pretrain_budget = budget
    targets: dict[str, int] = {}
    if phase == "anneal":
        targets[SFT_SOURCE] = round(budget * float(settings.anneal_sft_fraction))
        pretrain_budget = budget - targets[SFT_SOURCE]
    for name in sorted(shares):
        targets[name] = round(pretrain_budget * shares[name])
    return targets


def _budget(settings: MixtureSettings, phase: str) -> int:
    """The phase's token budget (``mixture.tokens.<phase>``)."""
    return int(getattr(settings.tokens, phase))


def sft_part_targets(sft_target: int, settings: MixtureSettings) -> dict[str, int]:
    """The SFT part's token target split by pair kind (``mixture.sft_shares``, code:NL 1:1 by default)."""
    code = round(sft_target * float(settings.sft_shares.code))
    return {"code": code, "nl": sft_target - code}


class LazyLengths:
    """Token lengths counted on first use, one chunk of the sampling order at a time.

    A source much larger than its budget (code, at any scale) is only tokenized as far as its shuffled order
    reaches before the budget is filled; a small one ends up fully counted.
    """

    def __init__(self, order: Sequence[int], count: Callable[[list[int]], list[int]], chunk: int = COUNT_CHUNK):
        self.order = list(order)
        self.count = count
        self.chunk = chunk
        self.position = {index: position for position, index in enumerate(self.order)}
        self.known: dict[int, int] = {}

    def __getitem__(self, index: int) -> int:
        if index not in self.known:
            start = self.position[index] // self.chunk * self.chunk
            block = self.order[start : start + self.chunk]
            self.known.update(zip(block, self.count(block), strict=True))
        return self.known[index]

    @property
    def complete(self) -> bool:
        return len(self.known) == len(self.order)


def _fill(lengths: LazyLengths, budget: int, tolerance: int) -> list[int]:
    """Take documents in the (shuffled) order while they fit, until the budget is met within ``tolerance``.

    A document that does not fit is skipped and the scan goes on (shorter ones may fit). If the whole order is
    scanned and a gap remains, the first skipped document closes it when the gap is at least half its length,
    so the achieved count lands within half a document of the target instead of always below it.
    """
    taken: list[int] = []
    filled = 0
    first_skipped = None
    for index in lengths.order:
        if budget - filled <= tolerance:
            return taken
        if filled + lengths[index] <= budget:
            taken.append(index)
            filled += lengths[index]
        elif first_skipped is None:
            first_skipped = index
    if first_skipped is not None and budget - filled >= lengths[first_skipped] / 2:
        taken.append(first_skipped)
    return taken


def sample_to_budget(
    n_docs: int, target: int, rng: random.Random, count: Callable[[list[int]], list[int]]
) -> tuple[list[tuple[int, int]], LazyLengths]:
    """(document index, repeat number) pairs whose token lengths add up to about ``target``.

    ``count`` gives the token lengths of a list of document indices (called lazily, in chunks). Repeat 0 is a
    document's first use: a large source is sampled without replacement in a seeded order; a source with fewer
    tokens than its target contributes whole passes (repeats 0, 1, ...) and then a seeded partial pass.
    Returns the picks and the lengths that were counted.
    """
    order = list(range(n_docs))
    rng.shuffle(order)
    lengths = LazyLengths(order, count)
    if target <= 0:
        return [], lengths
    if n_docs == 0:
        raise ValueError("cannot sample tokens from an empty source")
    tolerance = max(1, int(target * FILL_TOLERANCE))
    taken = _fill(lengths, target, tolerance)
    total = sum(lengths.known.values())
    if not (lengths.complete and total < target - tolerance):
        return [(index, 0) for index in taken], lengths
    # Too small for its share: every document once per whole pass, then a partial pass in the same order.
    full_passes, remainder = divmod(target, total)
    picks = [(index, repeat) for repeat in range(full_passes) for index in order]
    picks.extend((index, full_passes) for index in _fill(lengths, remainder, tolerance))
    return picks, lengths


def _sft_text(doc: Mapping[str, Any], paths: Sequence[str]) -> str:
    meta = json.loads(doc["meta"]) if doc.get("meta") else {}
    instruction, response = meta.get("instruction"), meta.get("response")
    if not isinstance(instruction, str) or not isinstance(response, str):
        raise InputError(", ".join(map(str, paths)), f"SFT document {doc.get('id')!r} lacks meta instruction/response")
    return render_chat(instruction, response)


def _mixture_doc(doc: Mapping[str, Any], text: str, source: str, repeat: int) -> dict:
    meta = json.loads(doc["meta"]) if doc.get("meta") else {}
    meta["mixture_source"] = source
    doc_id = doc["id"]
    if repeat:
        meta["mixture_repeat"] = repeat
        doc_id = f"{doc_id}.r{repeat}"  # ids stay unique inside the mixture
    return {
        "id": doc_id,
        "text": text,
        "source": doc.get("source") or source,
        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
    }


def _sft_kind(doc: Mapping[str, Any], paths: Sequence[str]) -> str:
    kind = (json.loads(doc["meta"]) if doc.get("meta") else {}).get("kind")
    if kind not in SFT_KINDS:
        raise InputError(
            ", ".join(map(str, paths)), f"SFT document {doc.get('id')!r} has meta kind {kind!r}, not code/nl"
        )
    return kind


def _sample_pool(docs, texts, target: int, rng_key: str, tokenizer, name: str, phase: str, paths) -> tuple[list, dict]:
    """Sample one pool of documents to its token target; returns (picks as (doc, text, repeat), statistics)."""
    if target > 0 and not docs:
        raise InputError(", ".join(map(str, paths)) or name, f"source {name!r} has no documents for phase {phase!r}")
    # String seeds hash with sha512 inside random.seed: stable across processes and Python builds.
    picks, lengths = sample_to_budget(len(docs), target, random.Random(rng_key), _length_counter(tokenizer, texts))
    achieved = sum(lengths[index] for index, _ in picks)
    entry = {
        "target_tokens": target,
        "tokens": achieved,
        "docs": len(picks),
        "unique_docs": len({index for index, _ in picks}),
        "repeats": sum(1 for _, repeat in picks if repeat > 0),
        "available_docs": len(docs),
        "counted_docs": len(lengths.known),
        **_available_tokens(lengths, texts, achieved),
    }
    return [(docs[index], texts[index], repeat) for index, repeat in picks], entry


def build_mixture(
    sources: Mapping[str, Sequence[str]],
    phase: str,
    settings: MixtureSettings,
    tokenizer,
    seed: int,
    exclude_ids: frozenset[str] | set[str] = frozenset(),
    held_out_ids: frozenset[str] | set[str] = frozenset(),
) -> tuple[list[dict], dict]:
    """One phase's shuffled documents and its statistics (configured vs achieved shares, repeats per source).

    ``exclude_ids``: documents to leave out (the decontamination list); ``held_out_ids``: the validation split's
    (mixture/validation.py). Both are left out and counted per source.
    """
    targets = phase_targets(phase, settings)
    budget = _budget(settings, phase)
    missing = [name for name, target in targets.items() if target > 0 and name not in sources]
    if missing:
        raise InputError(None, f"mixture phase {phase!r} needs sources {missing}, given {sorted(sources)}")

    out: list[dict] = []
    per_source: dict[str, dict] = {}
    for name in sorted(targets):
        target = targets[name]
        paths = [str(path) for path in sources.get(name, [])]
        docs = read_many(paths) if target > 0 else []
        contaminated = sum(1 for doc in docs if doc["id"] in exclude_ids)
        docs = [doc for doc in docs if doc["id"] not in exclude_ids]
        held_out = sum(1 for doc in docs if doc["id"] in held_out_ids)
        docs = [doc for doc in docs if doc["id"] not in held_out_ids]
        texts = [_sft_text(doc, paths) if name == SFT_SOURCE else doc["text"] for doc in docs]
        # An empty text costs only its </s> and teaches nothing; it is skipped and counted.
        keep = [i for i, text in enumerate(texts) if text]
        empty = len(texts) - len(keep)
        docs, texts = [docs[i] for i in keep], [texts[i] for i in keep]
        if target > 0 and not docs:
            raise InputError(", ".join(paths) or name, f"source {name!r} has no documents for phase {phase!r}")
        if name == SFT_SOURCE:
            picks, entry = _sample_sft(docs, texts, target, settings, seed, tokenizer, phase, paths)
        else:
            picks, entry = _sample_pool(docs, texts, target, f"{seed}:{phase}:{name}", tokenizer, name, phase, paths)
        entry["empty_docs_skipped"] = empty
        entry["decontaminated_docs"] = contaminated
        entry["validation_docs"] = held_out
        out.extend(_mixture_doc(doc, text, name, repeat) for doc, text, repeat in picks)
        per_source[name] = entry
        log.info(
            "%s/%s: %d of %d target tokens from %d docs (%d repeats, %d decontaminated)",
            phase,
            name,
            entry["tokens"],
            target,
            entry["docs"],
            entry["repeats"],
            contaminated,
        )

    random.Random(f"{seed}:{phase}:shuffle").shuffle(out)
    return out, _phase_stats(phase, settings, budget, per_source)


def _sample_sft(docs, texts, target, settings, seed, tokenizer, phase, paths) -> tuple[list, dict]:
    """The SFT part: code and NL pairs sampled separately to their shares of the part (1:1 by default)."""
    part_targets = sft_part_targets(target, settings)
    kinds = [_sft_kind(doc, paths) for doc in docs]
    picks: list = []
    parts: dict[str, dict] = {}
    for kind in SFT_KINDS:
        chosen = [i for i, k in enumerate(kinds) if k == kind]
        part_picks, entry = _sample_pool(
            [docs[i] for i in chosen],
            [texts[i] for i in chosen],
            part_targets[kind],
            f"{seed}:{phase}:{SFT_SOURCE}:{kind}",
            tokenizer,
            f"{SFT_SOURCE} ({kind})",
            phase,
            paths,
        )
        picks.extend(part_picks)
        parts[kind] = entry
    total = sum(entry["tokens"] for entry in parts.values())
    for kind, entry in parts.items():
        entry["configured_share"] = round(part_targets[kind] / target, 6) if target else 0.0
        entry["achieved_share"] = round(entry["tokens"] / total, 6) if total else 0.0
    merged = {
        key: sum(entry[key] for entry in parts.values())
        for key in ("target_tokens", "tokens", "docs", "unique_docs", "repeats", "available_docs", "counted_docs")
    }
    merged["available_tokens"] = sum(entry["available_tokens"] for entry in parts.values())
    merged["available_tokens_exact"] = all(entry["available_tokens_exact"] for entry in parts.values())
    merged["epochs"] = round(merged["tokens"] / merged["available_tokens"], 4) if merged["available_tokens"] else 0.0
    merged["parts"] = parts
    merged["max_part_share_error"] = round(
        max(abs(entry["achieved_share"] - entry["configured_share"]) for entry in parts.values()), 6
    )
    return picks, merged


def _length_counter(tokenizer, texts: Sequence[str]) -> Callable[[list[int]], list[int]]:
    """Tokens each indexed text costs in a training row: its ids plus the </s> packing appends."""

    def count(indices: list[int]) -> list[int]:
        return [len(ids) + 1 for ids in encode_batch(tokenizer, [texts[i] for i in indices])]

    return count


def _available_tokens(lengths: LazyLengths, texts: Sequence[str], achieved: int) -> dict:
    """The source's size in tokens: exact when every document was counted, else scaled from characters."""
    counted = sum(lengths.known.values())
    if lengths.complete:
        available = counted
    else:
        counted_chars = sum(len(texts[i]) for i in lengths.known) or 1
        available = round(counted * sum(len(text) for text in texts) / counted_chars)
    return {
        "available_tokens": available,
        "available_tokens_exact": lengths.complete,
        "epochs": round(achieved / available, 4) if available else 0.0,
    }


def _phase_stats(phase: str, settings: MixtureSettings, budget: int, per_source: dict[str, dict]) -> dict:
    total = sum(entry["tokens"] for entry in per_source.values())
    pretrain_total = sum(entry["tokens"] for name, entry in per_source.items() if name != SFT_SOURCE)
    for name, entry in per_source.items():
        entry["configured_share"] = round(entry["target_tokens"] / budget, 6) if budget else 0.0
        entry["achieved_share"] = round(entry["tokens"] / total, 6) if total else 0.0
        if name != SFT_SOURCE:
            # Within the pretraining part: directly comparable with mixture.shares in every phase.
            entry["configured_pretrain_share"] = float(getattr(settings.shares, name))
            entry["achieved_pretrain_share"] = round(entry["tokens"] / pretrain_total, 6) if pretrain_total else 0.0
    max_error = max((abs(e["achieved_share"] - e["configured_share"]) for e in per_source.values()), default=0.0)
    # The SFT part's code:NL split is held to the same tolerance (shares within the part).
    max_error = max([max_error] + [e["max_part_share_error"] for e in per_source.values() if "parts" in e])
    return {
        "phase": phase,
        "budget_tokens": budget,
        "tokens": total,
        "docs": sum(entry["docs"] for entry in per_source.values()),
        "repeats": sum(entry["repeats"] for entry in per_source.values()),
        "anneal_sft_fraction": float(settings.anneal_sft_fraction) if phase == "anneal" else 0.0,
        "sft_shares": settings.sft_shares.model_dump() if phase == "anneal" else None,
        "decontaminated_docs": sum(entry.get("decontaminated_docs", 0) for entry in per_source.values()),
        "max_share_error": round(max_error, 6),
        "sources": per_source,
    }


def collect_phase_stats(phase_stats: Sequence[Mapping[str, Any]]) -> dict:
    """All phases' mixture statistics in one document (results/mixture/stats.json)."""
    phases = {}
    for stats in phase_stats:
        phases[stats["phase"]] = dict(stats)
    order = [phase for phase in PHASES if phase in phases] + sorted(set(phases) - set(PHASES))
    return {"phases": {phase: phases[phase] for phase in order}}


class MixtureJob(Settings):
    """What rule mixture reads: the seed and the ``mixture:`` section."""

    seed: int
    mixture: MixtureSettings


def run_mixture(settings: MixtureJob, paths: RulePaths) -> dict:
    """Rule mixture: one phase's documents by token shares (results/mixture/{phase}.parquet + stats)."""
    from ..tokenization import load_tokenizer

    phase = paths.wildcards["phase"]
    names = ["code", "math", "text"] + ([SFT_SOURCE] if phase == "anneal" else [])
    sources = {name: path_list(paths.input[name]) for name in names}
    tokenizer = load_tokenizer(paths.input["tokenizer"])
    # Documents the decontamination step listed never enter a mixture.
    contaminated = read_ids(path_list(paths.input["contaminated"]))
    # The validation split's documents are scored by every phase and trained on by none.
    held_out = read_ids(path_list(paths.input["validation"]))
    docs, stats = build_mixture(sources, phase, settings.mixture, tokenizer, settings.seed, contaminated, held_out)
    write_docs(paths.output["docs"], docs)
    write_json(paths.output["stats"], stats)
    log.info(
        "mixture %s: %d docs, %d tokens (budget %d)", phase, stats["docs"], stats["tokens"], stats["budget_tokens"]
    )
    return stats


# What results/mixture/stats.json keeps of each decontamination group's statistics.
DECONTAMINATION_KEYS = (
    "enabled",
    "ngram",
    "min_matches",
    "read",
    "kept",
    "dropped",
    "by_benchmark",
    "missing_eval_roots",
)


def run_mixture_stats(settings: NoSettings, paths: RulePaths) -> dict:
    """Rule mixture_stats: every phase's configured vs achieved shares in results/mixture/stats.json."""
    stats = collect_phase_stats([read_json(path) for path in path_list(paths.input["stats"])])
    # What decontamination removed, per source group; the lists are results/mixture/decontamination/*.dropped.parquet.
    stats["decontamination"] = {}
    for path in path_list(paths.input["decontamination"]):
        group = read_json(path)
        name = SFT_SOURCE if SFT_SOURCE in group["sources"] else "pretrain"
        stats["decontamination"][name] = {key: group[key] for key in DECONTAMINATION_KEYS}
    write_json(paths.output["stats"], stats)
    for phase, entry in stats["phases"].items():
        log.info("%s: %d tokens, max share error %.4f", phase, entry["tokens"], entry["max_share_error"])
    return stats
