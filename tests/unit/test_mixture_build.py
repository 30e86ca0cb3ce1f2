"""Mixture: token shares per phase, repeats of small sources, the anneal phase's SFT part, determinism."""

from __future__ import annotations

import json
import random

import pytest

from abacus_repro.errors import InputError
from abacus_repro.io import write_docs
from abacus_repro.mixture import build_mixture, collect_phase_stats, phase_targets, sample_to_budget
from abacus_repro.settings import MixtureSettings
from abacus_repro.tokenization import count_tokens

from .pretrain_fixtures import (
    CODE_SNIPPETS,
    MATH_SNIPPETS,
    TEXT_SNIPPETS,
    build_tokenizer,
    sft_doc,
    synthetic_corpus,
)

SETTINGS = MixtureSettings(
    shares={"code": 0.7, "math": 0.1, "text": 0.2},
    tokens={"base": 6000, "cosine": 8000, "anneal": 5000},
    anneal_sft_fraction=0.2,
)


def mixture_settings(**changes) -> MixtureSettings:
    """SETTINGS with some keys changed, validated as a config's ``mixture:`` section is."""
    return MixtureSettings.model_validate({**SETTINGS.model_dump(), **changes})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    code = synthetic_corpus(400, CODE_SNIPPETS, "code")
    paths = {
        "code": [root / "code0.parquet", root / "code1.parquet"],
        "math": [root / "math.parquet"],
        "text": [root / "se.parquet", root / "docs.parquet"],
        "sft": [root / "sft.parquet"],
    }
    write_docs(paths["code"][0], code[:200])
    write_docs(paths["code"][1], code[200:])
    # Math is deliberately small: its share needs repeats.
    write_docs(paths["math"][0], synthetic_corpus(6, MATH_SNIPPETS, "math"))
    write_docs(paths["text"][0], synthetic_corpus(150, TEXT_SNIPPETS, "stackexchange"))
    write_docs(paths["text"][1], synthetic_corpus(50, TEXT_SNIPPETS, "docs"))
    # Many short code pairs, few long NL pairs: the 1:1 split by tokens must still hold.
    code_pairs = [sft_doc(f"Write function number {i}.", f"def f{i}(x):\n    return x + {i}\n") for i in range(120)]
    nl_pairs = [
        sft_doc(f"How do I use feature {i}?", f"Answer {i}: " + " ".join(TEXT_SNIPPETS[: 1 + i % 3]), kind="nl")
        for i in range(15)
    ]
    write_docs(paths["sft"][0], code_pairs + nl_pairs)
    return {name: [str(p) for p in value] for name, value in paths.items()}


def test_phase_targets_follow_shares_and_anneal_fraction():
    cosine = phase_targets("cosine", SETTINGS)
    assert cosine == {"code": 5600, "math": 800, "text": 1600}
    anneal = phase_targets("anneal", SETTINGS)
    assert anneal["sft"] == 1000
    assert anneal["code"] == 2800 and anneal["math"] == 400 and anneal["text"] == 800
    with pytest.raises(ValueError, match="sum to 1"):
        phase_targets("cosine", mixture_settings(shares={"code": 0.5, "math": 0.1, "text": 0.2}))


def counter(lengths, calls=None):
    def count(indices):
        if calls is not None:
            calls.append(len(indices))
        return [lengths[i] for i in indices]

    return count


def test_sample_to_budget_large_source_has_no_repeats_and_counts_lazily():
    rng = random.Random(0)
    lengths = [rng.randint(5, 50) for _ in range(5000)]
    calls = []
    picks, counted = sample_to_budget(len(lengths), 3000, random.Random(1), counter(lengths, calls))
    indices = [index for index, _ in picks]
    assert len(indices) == len(set(indices))
    assert all(repeat == 0 for _, repeat in picks)
    assert abs(sum(lengths[i] for i in indices) - 3000) <= 25  # within half the longest document
    # Only the part of the shuffled order the budget reached was tokenized.
    assert not counted.complete and sum(calls) == len(counted.known) < 1000


def test_sample_to_budget_small_source_repeats_whole_passes():
    lengths = [10, 20, 30]  # 60 tokens available
    picks, counted = sample_to_budget(3, 150, random.Random(3), counter(lengths))
    per_repeat = {}
    for index, repeat in picks:
        per_repeat.setdefault(repeat, []).append(index)
    assert sorted(per_repeat[0]) == [0, 1, 2] and sorted(per_repeat[1]) == [0, 1, 2]
    assert abs(sum(lengths[i] for i, _ in picks) - 150) <= 15
    assert counted.complete


def test_sample_to_budget_closes_a_gap_with_a_long_document():
    lengths = [100, 100, 100]
    picks, _ = sample_to_budget(3, 260, random.Random(0), counter(lengths))
    assert len(picks) == 3  # 200 fit; the remaining gap of 60 is over half a document: take it (300)
    picks, _ = sample_to_budget(3, 240, random.Random(0), counter(lengths))
    assert len(picks) == 2


def test_cosine_mixture_reaches_configured_shares(sources, tokenizer):
    docs, stats = build_mixture(sources, "cosine", SETTINGS, tokenizer, seed=7)
    assert stats["phase"] == "cosine" and stats["docs"] == len(docs)
    for name, share in SETTINGS.shares.model_dump().items():
        entry = stats["sources"][name]
        assert entry["configured_share"] == pytest.approx(share)
        assert entry["achieved_share"] == pytest.approx(share, abs=0.02)
        assert entry["docs"] == entry["unique_docs"] + entry["repeats"]
    # The tokens the stats claim are the tokens the documents cost (ids + </s>).
    lengths = count_tokens(tokenizer, [d["text"] for d in docs])
    assert sum(lengths) == stats["tokens"]
    assert stats["tokens"] == pytest.approx(SETTINGS.tokens.cosine, rel=0.02)
    # Math has ~6 short docs for 800 tokens: it must repeat, and the repeats are counted and marked.
    assert stats["sources"]["math"]["repeats"] > 0 and stats["sources"]["code"]["repeats"] == 0
    metas = [json.loads(d["meta"]) for d in docs]
    assert {m["mixture_source"] for m in metas} == {"code", "math", "text"}
    assert sum(1 for m in metas if m.get("mixture_repeat")) == stats["repeats"]
    assert len({d["id"] for d in docs}) == len(docs)


def test_anneal_mixture_renders_sft_pairs_as_chat(sources, tokenizer):
    docs, stats = build_mixture(sources, "anneal", SETTINGS, tokenizer, seed=7)
    sft = [d for d in docs if json.loads(d["meta"])["mixture_source"] == "sft"]
    code = [d for d in sft if json.loads(d["meta"])["kind"] == "code"]
    assert code and all(d["text"].startswith("<用户>Write function") and "<AI>def f" in d["text"] for d in code)
    assert stats["sources"]["sft"]["achieved_share"] == pytest.approx(0.2, abs=0.01)
    # Within the SFT part, code and NL pairs 1:1 by tokens (the recipe), whatever their counts.
    parts = stats["sources"]["sft"]["parts"]
    assert parts["code"]["configured_share"] == parts["nl"]["configured_share"] == 0.5
    assert parts["code"]["achieved_share"] == pytest.approx(0.5, abs=0.01)
    assert parts["code"]["docs"] > 2 * parts["nl"]["docs"]
    lengths = count_tokens(tokenizer, [d["text"] for d in sft if json.loads(d["meta"])["kind"] == "nl"])
    assert sum(lengths) == parts["nl"]["tokens"]
    assert stats["max_share_error"] < 0.01
    # A 7:3 setting (the other seed) and another code:NL split are settings, not code.
    _, other = build_mixture(
        sources,
        "anneal",
        mixture_settings(anneal_sft_fraction=0.3, sft_shares={"code": 0.7, "nl": 0.3}),
        tokenizer,
        seed=7,
    )
    assert other["sources"]["sft"]["achieved_share"] == pytest.approx(0.3, abs=0.01)
    assert other["sources"]["sft"]["parts"]["code"]["achieved_share"] == pytest.approx(0.7, abs=0.02)
    shares = SETTINGS.shares.model_dump()
    pretrain = {n: stats["sources"][n]["achieved_pretrain_share"] for n in shares}
    for name, share in shares.items():
        assert pretrain[name] == pytest.approx(share, abs=0.03)


def test_mixture_is_deterministic_and_seeded(sources, tokenizer):
    first, stats_a = build_mixture(sources, "base", SETTINGS, tokenizer, seed=11)
    second, stats_b = build_mixture(sources, "base", SETTINGS, tokenizer, seed=11)
    other, _ = build_mixture(sources, "base", SETTINGS, tokenizer, seed=12)
    assert first == second and stats_a == stats_b
    assert [d["id"] for d in first] != [d["id"] for d in other]


def test_missing_or_empty_source_is_an_input_error(sources, tokenizer, tmp_path):
    with pytest.raises(InputError, match="needs sources"):
        build_mixture({k: v for k, v in sources.items() if k != "math"}, "cosine", SETTINGS, tokenizer, 1)
    empty = tmp_path / "empty.parquet"
    write_docs(empty, [])
    with pytest.raises(InputError, match="no documents"):
        build_mixture({**sources, "math": [str(empty)]}, "cosine", SETTINGS, tokenizer, 1)
    broken = tmp_path / "sft.parquet"
    write_docs(broken, [{"id": "x", "text": "t", "source": "sft", "meta": "{}"}])
    with pytest.raises(InputError, match="instruction"):
        build_mixture({**sources, "sft": [str(broken)]}, "anneal", SETTINGS, tokenizer, 1)


def test_collect_phase_stats_orders_phases(sources, tokenizer):
    stats = [build_mixture(sources, phase, SETTINGS, tokenizer, 3)[1] for phase in ("anneal", "base")]
    merged = collect_phase_stats(stats)
    assert list(merged["phases"]) == ["base", "anneal"]
    assert merged["phases"]["anneal"]["sources"]["sft"]["tokens"] > 0


def test_stats_json_shares_are_within_one_percent_of_the_configuration(sources, tokenizer):
    """What results/mixture/stats.json reports, for every phase: achieved within 1% of configured, SFT split too."""
    settings = mixture_settings(tokens={"base": 20000, "cosine": 20000, "anneal": 12000})
    merged = collect_phase_stats(
        [build_mixture(sources, phase, settings, tokenizer, 5)[1] for phase in ("base", "cosine", "anneal")]
    )
    for phase, stats in merged["phases"].items():
        assert stats["tokens"] == pytest.approx(getattr(settings.tokens, phase), rel=0.01), phase
        for name, entry in stats["sources"].items():
            assert abs(entry["achieved_share"] - entry["configured_share"]) < 0.01, (phase, name, entry)
            for kind, part in entry.get("parts", {}).items():
                assert abs(part["achieved_share"] - part["configured_share"]) < 0.01, (phase, name, kind, part)
        assert stats["max_share_error"] < 0.01
    anneal = merged["phases"]["anneal"]["sources"]
    assert anneal["sft"]["configured_share"] == pytest.approx(0.2)
    assert anneal["code"]["configured_pretrain_share"] == 0.7
