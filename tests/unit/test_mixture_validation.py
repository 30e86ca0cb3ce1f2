"""The held-out validation split: chosen by a hash of the id alone, capped, never a source's last document."""

from __future__ import annotations

import random

from abacus_repro.mixture.validation import choose_validation, held_out_count
from abacus_repro.settings import ValidationSplitSettings


def docs(n: int, prefix: str = "doc") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"text {i}"} for i in range(n)]


def test_counts_follow_fraction_cap_and_keep_one_document():
    settings = ValidationSplitSettings(fraction=0.01, max_documents=16)
    assert [held_out_count(n, settings) for n in (0, 1, 2, 50, 100, 101, 5000)] == [0, 0, 1, 1, 1, 2, 16]
    assert held_out_count(10, ValidationSplitSettings(fraction=1.0, max_documents=100)) == 9
    assert held_out_count(1000, ValidationSplitSettings(fraction=0.5, max_documents=0)) == 0


def test_the_split_depends_on_the_ids_alone():
    settings = ValidationSplitSettings(fraction=0.05, max_documents=4)
    corpus = docs(200)
    chosen = [doc["id"] for doc in choose_validation(corpus, settings)]
    assert len(chosen) == 4 and len(set(chosen)) == 4
    shuffled = corpus[:]
    random.Random(7).shuffle(shuffled)
    assert [doc["id"] for doc in choose_validation(shuffled, settings)] == chosen  # order does not matter
    # One ranking for every size: grown by other documents, the source holds out none of its old ones newly.
    more = [doc["id"] for doc in choose_validation(corpus + docs(200, "extra"), settings)]
    assert {i for i in more if not i.startswith("extra")} <= set(chosen)


def test_each_validation_document_is_one_row_of_its_first_tokens(tmp_path):
    from abacus_repro.tokenization import tokenize_and_pack
    from abacus_repro.tokenization.phase import first_rows

    from .pretrain_fixtures import CODE_SNIPPETS, build_tokenizer

    tokenizer = build_tokenizer(tmp_path / "tokenizer")
    long_doc = {"id": "long", "text": "\n".join(CODE_SNIPPETS * 20)}
    short_doc = {"id": "short", "text": CODE_SNIPPETS[0]}
    empty_doc = {"id": "empty", "text": ""}
    per_document = [tokenize_and_pack([doc], tokenizer, 32, sft=False) for doc in (long_doc, short_doc, empty_doc)]
    packed = first_rows(per_document, 32, sft=False)
    assert packed.tokens.shape == (2, 32)
    assert packed.meta["truncated_documents"] == 1 and packed.meta["skipped_empty"] == 1
    assert (packed.tokens[0] == per_document[0].tokens[0]).all() and (packed.segments[0] == 0).all()
    assert packed.meta["target_tokens"] == int(packed.loss_mask.sum()) > 0
