"""GGUF export of a SentencePiece (MiniCPM-style) tokenizer: llama.cpp's ``llama`` vocabulary, checked with llama.cpp.

A small SentencePiece BPE model (byte fallback, <用户>/<AI> as symbols, as MiniCPM's) is trained here, turned into
a Hugging Face LlamaTokenizer by transformers, and put under a random tiny MiniCPM.
"""

from __future__ import annotations

import json
import logging

import pytest

from abacus_repro.export import export_all, gguf_metadata, write_gguf
from abacus_repro.settings import ExportSettings, ModelSettings

from .model_fixtures import TINY_MODEL, corpus_texts

spm = pytest.importorskip("sentencepiece")
pytest.importorskip("llama_cpp")

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<用户>' + message['content'] + '<AI>' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + '</s>' }}{% else %}{{ message['content'] }}"
    "{% endif %}{% endfor %}"
)


def _train_sentencepiece(directory) -> None:
    lines = [line for text in corpus_texts(200_000) for line in text.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(directory / "sp"),
        vocab_size=1000,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        user_defined_symbols=["<用户>", "<AI>"],
        split_digits=True,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )


def _set_legacy(model_dir, legacy: bool | None) -> None:
    """transformers 5 does not save LlamaTokenizer's ``legacy`` flag; MiniCPM's own config sets it to true."""
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("legacy", None)
    if legacy is not None:
        config["legacy"] = legacy
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    """(model directory, SentencePiece processor) for a random tiny MiniCPM with a SentencePiece tokenizer."""
    from transformers import AutoTokenizer

    from abacus_repro.model.init import build_model, config_from_settings

    root = tmp_path_factory.mktemp("sentencepiece")
    _train_sentencepiece(root)
    source = root / "source"
    source.mkdir()
    (source / "tokenizer.model").write_bytes((root / "sp.model").read_bytes())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "legacy": True,
        "add_bos_token": True,
        "additional_special_tokens": ["<用户>", "<AI>"],
        "chat_template": CHAT_TEMPLATE,
    }
    (source / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except Exception as err:  # noqa: BLE001  (transformers needs sentencepiece's protobuf module to convert)
        pytest.skip(f"transformers cannot convert the SentencePiece model here: {err}")
    if len(tokenizer) != 1000:
        pytest.skip("transformers did not read the SentencePiece model (see its warnings)")
    model_dir = root / "model"
    build_model(config_from_settings(ModelSettings(**TINY_MODEL), tokenizer), seed=1234).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    _set_legacy(model_dir, True)
    return model_dir, spm.SentencePieceProcessor(model_file=str(root / "sp.model"))


def test_sentencepiece_vocabulary_is_written_as_llama(sp_model, tmp_path):
    import gguf

    model_dir, sp = sp_model
    path = write_gguf(model_dir, tmp_path / "sp-F16.gguf", "F16")
    meta = gguf_metadata(path)
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_space_prefix"] is True and meta["tokenizer.ggml.add_bos_token"] is True
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (sp.bos_id(), sp.eos_id())
    assert "tokenizer.ggml.merges" not in meta

    reader = gguf.GGUFReader(str(path))

    def array(key):
        field = reader.fields[key]
        return [field.contents(i) for i in range(len(field.data))]

    tokens, scores, types = (array(f"tokenizer.ggml.{k}") for k in ("tokens", "scores", "token_type"))
    assert tokens == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    # The scores written from Hugging Face's vocabulary order are SentencePiece's own.
    assert scores == pytest.approx([sp.get_score(i) for i in range(sp.get_piece_size())])
    assert types[sp.unk_id()] == gguf.TokenType.UNKNOWN
    assert types[sp.piece_to_id("<0x0A>")] == gguf.TokenType.BYTE
    assert types[sp.piece_to_id("<用户>")] == types[sp.bos_id()] == gguf.TokenType.CONTROL
    assert all(types[i] == gguf.TokenType.NORMAL for i in range(sp.get_piece_size()) if sp.get_score(i) < 0)


def test_llama_cpp_reproduces_the_sentencepiece_model(sp_model, tmp_path):
    """Tokenization equal on the fixed prompts (code, indentation, Chinese, chat turns), logits, greedy text."""
    model_dir, _ = sp_model
    report = export_all(model_dir, [tmp_path / "m-F16.gguf"], tmp_path / "verify.json", ExportSettings(), threads=2)
    f16 = report["files"]["F16"]
    assert report["passed"] and f16["tokenization_equal"]
    assert f16["vs_hf"]["top1_agreement_beyond_ties"] == 1.0 and f16["greedy_equal_up_to_ties"]
    assert any(p["prompt"].startswith("<用户>") for p in f16["prompts"])


def test_prefix_only_at_the_start_is_flagged(sp_model, tmp_path, caplog):
    """Without ``legacy`` transformers puts no '▁' after a special token, llama.cpp does: logged, and caught."""
    import shutil

    from abacus_repro.export import ExportVerificationError

    model_dir, _ = sp_model
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    _set_legacy(copy, None)
    with (
        caplog.at_level(logging.WARNING, logger="abacus_repro.export.vocab"),
        pytest.raises(ExportVerificationError, match="tokenizes differently"),
    ):
        export_all(copy, [tmp_path / "m-F16.gguf"], tmp_path / "verify.json", ExportSettings(), threads=2)
    assert "prepend_scheme 'first'" in caplog.text
    prompts = json.loads((tmp_path / "verify.json").read_text())["files"]["F16"]["prompts"]
    assert {p["prompt"].startswith("<用户>") for p in prompts if not p["tokenization_equal"]} == {True}
