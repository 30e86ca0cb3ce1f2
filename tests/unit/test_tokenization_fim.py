"""Fill-in-the-middle at packing time: only code documents, both layouts, both levels, seeded per document."""

from __future__ import annotations

import numpy as np
import pytest

from abacus_repro.errors import InputError
from abacus_repro.settings import FimSettings
from abacus_repro.tokenization import tokenize_and_pack, write_packed
from abacus_repro.tokenization.fim import FimPlan, draw_cut

from .pretrain_fixtures import CODE_SNIPPETS, TEXT_SNIPPETS, build_tokenizer, sft_doc, synthetic_corpus

# Long enough that no document is split, so every packed piece is one whole document.
SEQ_LEN = 512
SEED = 11


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def docs():
    return synthetic_corpus(40, CODE_SNIPPETS, "code") + synthetic_corpus(20, TEXT_SNIPPETS, "text")


def plan(**fim) -> FimPlan:
    return FimPlan(FimSettings(**fim), SEED)


def packed_documents(packed) -> list[list[int]]:
    """Every packed piece's ids without its closing </s> (whole documents: none is split at SEQ_LEN)."""
    assert packed.meta["split_documents"] == 0
    out = []
    for row in range(packed.tokens.shape[0]):
        for segment in range(int(packed.segments[row].max()) + 1):
            ids = packed.tokens[row, packed.segments[row] == segment].tolist()
            out.append(ids[:-1])
    return out


def parse_fim(ids: list[int], tokenizer) -> tuple[str, list[int], list[int], list[int]] | None:
    """(layout, prefix, middle, suffix) of a FIM document; None for an untransformed one."""
    pre, mid, suf = tokenizer.convert_tokens_to_ids(["<fim_prefix>", "<fim_middle>", "<fim_suffix>"])
    if ids[0] not in (pre, suf):
        assert not {pre, mid, suf} & set(ids)
        return None
    assert [ids.count(marker) for marker in (pre, mid, suf)] == [1, 1, 1]
    i_pre, i_mid, i_suf = ids.index(pre), ids.index(mid), ids.index(suf)
    middle = ids[i_mid + 1 :]
    if ids[0] == pre:  # PSM: <fim_prefix> P <fim_suffix> S <fim_middle> M
        assert i_pre < i_suf < i_mid
        return "psm", ids[1:i_suf], middle, ids[i_suf + 1 : i_mid]
    assert i_suf < i_pre < i_mid  # SPM: <fim_suffix> S <fim_prefix> P <fim_middle> M
    return "spm", ids[i_pre + 1 : i_mid], middle, ids[1:i_pre]


def test_rate_zero_packs_exactly_as_without_fim(tokenizer, docs):
    plain = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False)
    off = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=0.0))
    for name in ("tokens", "segments", "loss_mask"):
        assert getattr(off, name).tobytes() == getattr(plain, name).tobytes()
    assert plain.meta["fim"] is None
    assert {k: v for k, v in off.meta.items() if k != "fim"} == {k: v for k, v in plain.meta.items() if k != "fim"}
    assert off.meta["fim"] == {
        "rate": 0.0,
        "spm_rate": 0.5,
        "level": "character",
        "code_documents": 40,
        "psm_documents": 0,
        "spm_documents": 0,
    }


def test_character_level_documents_reassemble_to_the_original(tokenizer, docs):
    packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=1.0))
    by_text = {doc["text"]: doc for doc in docs}
    layouts = {"psm": 0, "spm": 0}
    seen = []
    for ids in packed_documents(packed):
        parsed = parse_fim(ids, tokenizer)
        if parsed is None:
            text = tokenizer.decode(ids)
            assert by_text[text]["source"] == "text"  # prose is never transformed
        else:
            mode, prefix, middle, suffix = parsed
            layouts[mode] += 1
            text = "".join(tokenizer.decode(part) for part in (prefix, middle, suffix))
            assert by_text[text]["source"] == "code"
        seen.append(text)
    assert sorted(seen) == sorted(by_text)
    fim = packed.meta["fim"]
    assert (fim["code_documents"], fim["psm_documents"], fim["spm_documents"]) == (40, layouts["psm"], layouts["spm"])
    assert layouts["psm"] + layouts["spm"] == 40 and layouts["psm"] > 5 and layouts["spm"] > 5


def test_token_level_parts_are_the_documents_own_ids(tokenizer, docs):
    packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=1.0, level="token"))
    originals = {tuple(tokenizer(doc["text"], add_special_tokens=False)["input_ids"]) for doc in docs}
    rebuilt = []
    for ids in packed_documents(packed):
        parsed = parse_fim(ids, tokenizer)
        rebuilt.append(tuple(ids) if parsed is None else tuple(parsed[1] + parsed[2] + parsed[3]))
    assert set(rebuilt) == originals and len(rebuilt) == len(docs)
    assert packed.meta["fim"]["level"] == "token"


@pytest.mark.parametrize(("spm_rate", "expected"), [(0.0, "psm"), (1.0, "spm")])
def test_spm_rate_chooses_the_layout(tokenizer, docs, spm_rate, expected):
    packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=1.0, spm_rate=spm_rate))
    modes = {parsed[0] for ids in packed_documents(packed) if (parsed := parse_fim(ids, tokenizer))}
    assert modes == {expected}


def test_choices_depend_on_seed_and_id_not_on_order(tokenizer, docs, tmp_path):
    settings = {"rate": 0.5}
    forward = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(**settings))
    backward = tokenize_and_pack(docs[::-1], tokenizer, SEQ_LEN, sft=False, fim=plan(**settings))
    assert sorted(packed_documents(forward)) == sorted(packed_documents(backward))
    assert 0 < forward.meta["fim"]["psm_documents"] + forward.meta["fim"]["spm_documents"] < 40
    # Same inputs, settings and seed: byte-identical files.
    outputs = []
    for run in ("a", "b"):
        packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(**settings))
        paths = [tmp_path / run / name for name in ("tokens.npy", "segments.npy", "loss_mask.npy", "meta.json")]
        write_packed(packed, *paths)
        outputs.append([path.read_bytes() for path in paths])
    assert outputs[0] == outputs[1]
    # Another seed draws other documents and other cut points.
    reseeded = FimPlan(FimSettings(**settings), SEED + 1)
    assert [draw_cut(reseeded, doc["id"], 100) for doc in docs] != [
        draw_cut(plan(**settings), d["id"], 100) for d in docs
    ]


def test_sft_rows_are_never_transformed(tokenizer):
    pairs = [sft_doc(f"Write function {i}.", f"def f{i}(x):\n    return x * {i}\n") for i in range(10)]
    plain = tokenize_and_pack(pairs, tokenizer, SEQ_LEN, sft=True)
    with_plan = tokenize_and_pack(pairs, tokenizer, SEQ_LEN, sft=True, fim=plan(rate=1.0))
    assert np.array_equal(plain.tokens, with_plan.tokens) and with_plan.meta["fim"] is None


def test_a_tokenizer_without_fim_tokens_is_an_input_error(tmp_path, docs):
    from tokenizers import pre_tokenizers, trainers

    from abacus_repro.model.tokenizer import AI_TAG, BOS, EOS, PAD, UNK, USER_TAG, build_bpe_tokenizer, wrap_tokenizer

    old = build_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=[UNK, BOS, EOS, PAD, USER_TAG, AI_TAG],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    old.train_from_iterator(CODE_SNIPPETS, trainer=trainer)
    tokenizer = wrap_tokenizer(old, additional_special_tokens=(USER_TAG, AI_TAG))
    assert tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=0.0)).meta["documents"] == 60
    with pytest.raises(InputError, match="lacks \\['<fim_prefix>', '<fim_middle>', '<fim_suffix>'\\]"):
        tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=False, fim=plan(rate=0.5))
