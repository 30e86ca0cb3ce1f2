"""The run's byte-level BPE tokenizer: determinism, special tokens, chat template, sampling from shards."""

from __future__ import annotations

import pytest

from abacus_repro.errors import InputError
from abacus_repro.io import make_doc, write_docs
from abacus_repro.model.tokenizer import (
    load_tokenizer,
    sample_training_texts,
    tokenizer_from_shards,
    train_tokenizer,
)
from abacus_repro.settings import TokenizerSettings

from .model_fixtures import corpus_texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus_texts(300_000), 1024, out, seed=7)
    return out


def test_training_is_deterministic(trained, tmp_path):
    train_tokenizer(corpus_texts(300_000), 1024, tmp_path, seed=7)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (trained / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]


def test_special_tokens_and_no_bos_on_encode(trained):
    tok = load_tokenizer(trained / "tokenizer.json")
    assert len(tok) == 1024
    assert tok.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<pad>", "<用户>", "<AI>"]) == [0, 1, 2, 3, 4, 5]
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    ids = tok("<用户>hi<AI>")["input_ids"]
    assert ids[0] == 4 and ids[-1] == 5 and 1 not in ids  # markers are single tokens; no BOS added


def test_fim_markers_follow_the_chat_markers_as_special_tokens(trained):
    tok = load_tokenizer(trained)
    fim = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
    # After MiniCPM's six: <用户> and <AI> keep ids 4 and 5.
    assert tok.convert_tokens_to_ids(["<用户>", "<AI>", *fim]) == [4, 5, 6, 7, 8, 9]
    ids = tok("<fim_prefix>def f(<fim_suffix>):<fim_middle>x")["input_ids"]
    assert [ids[0], ids[-2]] == [6, 7] and 8 in ids  # each marker one token, found inside text
    assert tok.decode(ids, skip_special_tokens=True) == "def f():x"


def test_byte_level_round_trip(trained):
    tok = load_tokenizer(trained)
    for text in ["def f(x):\n\treturn x ** 2  # 平方\n", "emoji 🧮 and \x00 control", "  leading spaces"]:
        assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_is_minicpm_style(trained):
    tok = load_tokenizer(trained)
    messages = [{"role": "user", "content": "写一个函数"}, {"role": "assistant", "content": "def f(): pass"}]
    assert tok.apply_chat_template(messages, tokenize=False) == "<用户>写一个函数<AI>def f(): pass</s>"
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<用户>写一个函数<AI>"


def test_sample_respects_budget_and_seed(tmp_path):
    docs = [make_doc(f"document {i} " + "x" * (50 + i), "code") for i in range(200)]
    sft = [make_doc("q\na", "sft", {"instruction": "问题 Q", "response": "回答 A"})]
    write_docs(tmp_path / "a.parquet", docs)
    write_docs(tmp_path / "sft.parquet", sft)
    paths = [tmp_path / "a.parquet", tmp_path / "sft.parquet"]
    first = sample_training_texts(paths, 3000, seed=1)
    assert sum(map(len, first)) == 3000
    assert first == sample_training_texts(paths, 3000, seed=1)
    assert first != sample_training_texts(paths, 3000, seed=2)
    everything = sample_training_texts(paths, 10**9, seed=1)
    assert len(everything) == 201
    assert "问题 Q\n回答 A" in everything  # SFT pairs contribute both sides from meta


def test_tokenizer_from_shards_and_bad_input(tmp_path):
    docs = [make_doc(text, "text") for text in corpus_texts(60_000)]
    write_docs(tmp_path / "docs.parquet", docs)
    settings = TokenizerSettings(vocab_size=600, train_chars=50_000)
    out = tokenizer_from_shards([tmp_path / "docs.parquet"], settings, tmp_path / "t", 3)
    assert len(load_tokenizer(out)) == 600
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="broken.parquet"):
        tokenizer_from_shards([tmp_path / "broken.parquet"], settings, tmp_path / "t2", 3)
    with pytest.raises(InputError, match="missing.parquet"):
        tokenizer_from_shards([tmp_path / "missing.parquet"], settings, tmp_path / "t3", 3)
