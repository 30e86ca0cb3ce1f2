"""The paper run's starting point at tiny size: a checkpoint in MiniCPM-2B's published layout (config.json keys,
bf16 safetensors names, a SentencePiece tokenizer.model trained here), its tokenizer converted and checked
against sentencepiece itself, loaded by init_model through our classes and checked against the config, exported
to GGUF."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml

from abacus_repro.errors import InputError
from abacus_repro.model.init import check_pretrained_config, init_model, load_pretrained
from abacus_repro.model.published_layout import PUBLISHED_CONFIG, write_published_layout
from abacus_repro.model.tokenizer import (
    PROBE_TEXTS,
    SP_USER_DEFINED,
    export_pretrained_tokenizer,
    load_tokenizer,
    read_sentencepiece_model,
)
from abacus_repro.settings import ModelSettings

from .model_fixtures import TINY_MODEL

spm = pytest.importorskip("sentencepiece")

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"
VOCAB = 2000
SETTINGS = {**TINY_MODEL, "pretrained": None}
LAYOUT_FILES = [
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.model",
    "tokenizer_config.json",
]


def published_tensor_names(n_layers: int) -> set[str]:
    """MiniCPM-2B's tensor names (Llama naming), written out here rather than read from our model."""
    per_layer = [
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
        *(f"self_attn.{p}_proj.weight" for p in "qkvo"),
        *(f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")),
    ]
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    return names | {f"model.layers.{i}.{name}" for i in range(n_layers) for name in per_layer}


def real_texts(max_chars: int = 120_000) -> list[str]:
    """Mixed Chinese, English, German, French prose and code: the sample documents and stdlib modules the
    tokenizer never saw (collections, re), in 2,000-character pieces."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix in (".md", ".rst"))
    paths += sorted((stdlib / "collections").rglob("*.py")) + sorted((stdlib / "re").rglob("*.py"))
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)[:max_chars]
    return [text[i : i + 2000] for i in range(0, len(text), 2000)]


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return write_published_layout(tmp_path_factory.mktemp("published") / "step_1", SETTINGS, VOCAB, 1234, SAMPLES)


@pytest.fixture(scope="module")
def tokenizer_dir(layout, tmp_path_factory) -> Path:
    return export_pretrained_tokenizer(layout, tmp_path_factory.mktemp("tokenizer"), expected_size=VOCAB)


@pytest.fixture(scope="module")
def initialised(layout, tokenizer_dir, tmp_path_factory) -> Path:
    settings = ModelSettings(**{**SETTINGS, "pretrained": str(layout)})
    return init_model(settings, tokenizer_dir / "tokenizer.json", tmp_path_factory.mktemp("init") / "model", 0)


def test_layout_is_the_published_one(layout):
    from safetensors import safe_open

    assert sorted(p.name for p in layout.iterdir()) == LAYOUT_FILES
    config = json.loads((layout / "config.json").read_text())
    assert list(config) == list(PUBLISHED_CONFIG)
    assert config["architectures"] == ["MiniCPMForCausalLM"] and config["model_type"] == "minicpm"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_minicpm.MiniCPMForCausalLM"
    assert not (layout / "modeling_minicpm.py").exists()  # the remote code it names is not there
    published = {"bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "rope_scaling": None,
                 "torch_dtype": "bfloat16", "tie_word_embeddings": True, "use_cache": True}  # fmt: skip
    assert {k: config[k] for k in published} == published
    dims = {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "scale_emb", "scale_depth", "dim_model_base", "rms_norm_eps", "rope_theta"}  # fmt: skip
    assert {k: config[k] for k in dims} == {k: TINY_MODEL[k] for k in dims}
    assert config["initializer_range"] == TINY_MODEL["init_std"] and config["vocab_size"] == VOCAB

    with safe_open(str(layout / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
        assert weights.metadata() == {"format": "pt"}
        assert {weights.get_tensor(n).dtype for n in names} == {torch.bfloat16}
        assert tuple(weights.get_tensor("model.embed_tokens.weight").shape) == (VOCAB, TINY_MODEL["hidden_size"])
    assert names == published_tensor_names(TINY_MODEL["num_hidden_layers"])  # tied: no lm_head.weight

    tokenizer_config = json.loads((layout / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "LlamaTokenizer" and tokenizer_config["legacy"] is True
    assert tokenizer_config["add_bos_token"] is True and tokenizer_config["pad_token"] is None
    special = json.loads((layout / "special_tokens_map.json").read_text())
    assert {k: v["content"] for k, v in special.items()} == {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
    }


def test_sentencepiece_model_has_minicpm_pieces(layout):
    sp = spm.SentencePieceProcessor(model_file=str(layout / "tokenizer.model"))
    assert sp.get_piece_size() == VOCAB
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert sum(sp.is_byte(i) for i in range(VOCAB)) == 256
    proto = read_sentencepiece_model(layout / "tokenizer.model")
    markers = [p.piece for p in proto.pieces if p.type == SP_USER_DEFINED]
    assert markers == ["<用户>", "<AI>"] and proto.trainer_spec.byte_fallback
    # User-defined symbols are matched whole in any text, as MiniCPM's chat markers are.
    pieces = [sp.id_to_piece(i) for i in sp.encode("问题<用户>x<AI>y")]
    assert pieces[pieces.index("<用户>") :] == ["<用户>", "x", "<AI>", "y"]


def test_layout_is_deterministic_and_seeded(layout, tmp_path):
    again = write_published_layout(tmp_path / "again", SETTINGS, VOCAB, 1234, SAMPLES)
    for name in LAYOUT_FILES:
        assert (again / name).read_bytes() == (layout / name).read_bytes(), name
    other = write_published_layout(tmp_path / "other", SETTINGS, VOCAB, 99, SAMPLES)
    assert (other / "model.safetensors").read_bytes() != (layout / "model.safetensors").read_bytes()


def test_tokenizer_ids_equal_sentencepiece(layout, tokenizer_dir):
    assert sorted(p.name for p in tokenizer_dir.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    tok = load_tokenizer(tokenizer_dir)
    sp = spm.SentencePieceProcessor(model_file=str(layout / "tokenizer.model"))
    texts = [*PROBE_TEXTS, *real_texts()]
    for text in texts:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text[:60]
    # Byte fallback really happened, and decoding gives the text back.
    emoji = "算盘 🧮 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    ids = tok(emoji, add_special_tokens=False)["input_ids"]
    assert any(sp.is_byte(i) for i in ids) and tok.decode(ids) == emoji
    # As published: BOS added on encode, no padding token of its own (EOS pads), the markers one token each.
    assert tok("x")["input_ids"][0] == sp.bos_id() and tok.pad_token == "</s>"
    assert tok.convert_tokens_to_ids(["<用户>", "<AI>"]) == [sp.piece_to_id("<用户>"), sp.piece_to_id("<AI>")]
    messages = [{"role": "user", "content": "写一个函数"}, {"role": "assistant", "content": "def f(): pass"}]
    assert tok.apply_chat_template(messages, tokenize=False) == "<用户>写一个函数<AI>def f(): pass</s>"


@pytest.mark.parametrize(
    ("normalization", "remove_extra_whitespaces", "add_dummy_prefix", "legacy"),
    [("nmt_nfkc", True, True, True), ("nmt_nfkc", True, False, True), ("identity", False, False, False)],
)
def test_other_sentencepiece_settings_convert_exactly(
    tmp_path, normalization, remove_extra_whitespaces, add_dummy_prefix, legacy
):
    """Normalization (NFKC's precompiled map), extra-whitespace removal, no dummy prefix, non-legacy spacing:
    the converter follows the model's own normalizer spec, checked against sentencepiece."""
    model = _train_variant(tmp_path, normalization, remove_extra_whitespaces, add_dummy_prefix, legacy)
    tok = load_tokenizer(export_pretrained_tokenizer(model, tmp_path / "tokenizer"))
    sp = spm.SentencePieceProcessor(model_file=str(model / "tokenizer.model"))
    for text in [*PROBE_TEXTS, "ｆｕｌｌ　ｗｉｄｔｈ  ＡＢＣ １２３", *real_texts(20_000)]:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text[:40]


def test_unconvertible_spacing_is_refused(tmp_path):
    model = _train_variant(tmp_path, "identity", False, True, False)
    with pytest.raises(InputError, match="exactly only with legacy spacing"):
        export_pretrained_tokenizer(model, tmp_path / "tokenizer")


def _train_variant(tmp_path, normalization, remove_extra_whitespaces, add_dummy_prefix, legacy) -> Path:
    lines = [line for text in real_texts(80_000) for line in text.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "sp"), vocab_size=900, model_type="bpe",
        byte_fallback=True, normalization_rule_name=normalization, remove_extra_whitespaces=remove_extra_whitespaces,
        add_dummy_prefix=add_dummy_prefix, num_threads=1, minloglevel=2,
    )  # fmt: skip
    model = tmp_path / "checkpoint"
    model.mkdir()
    shutil.copyfile(tmp_path / "sp.model", model / "tokenizer.model")
    (model / "tokenizer_config.json").write_text(json.dumps({"legacy": legacy}))
    return model


def test_tokenizer_checks(layout, tmp_path):
    with pytest.raises(InputError, match=f"has {VOCAB} tokens but tokenizer.vocab_size is 122753"):
        export_pretrained_tokenizer(layout, tmp_path / "t", expected_size=122753)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="neither tokenizer.model nor tokenizer.json"):
        export_pretrained_tokenizer(empty, tmp_path / "t2")
    (empty / "tokenizer.model").write_bytes(b"\x00not a model")
    with pytest.raises(InputError, match="tokenizer.model: not a SentencePiece model"):
        export_pretrained_tokenizer(empty, tmp_path / "t3")


def test_init_model_resaves_with_equal_logits(layout, initialised):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from abacus_repro.model.modeling import MiniCPMForCausalLM

    config = json.loads((initialised / "config.json").read_text())
    assert config["dtype"] == "bfloat16"  # kept as published
    assert all((initialised / f"{ref.split('.')[0]}.py").exists() for ref in config["auto_map"].values())
    ours = AutoModelForCausalLM.from_pretrained(initialised, dtype=torch.float32).eval()
    direct = MiniCPMForCausalLM.from_pretrained(layout, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(initialised)
    sp = spm.SentencePieceProcessor(model_file=str(layout / "tokenizer.model"))
    text = "def 平方(x):\n    return x ** 2  # 🧮\n"
    assert tok(text)["input_ids"] == [sp.bos_id(), *sp.encode(text)]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        ours_logits, direct_logits = ours(ids).logits, direct(ids).logits
    # The FIM markers are appended after the checkpoint's vocabulary; every logit the checkpoint had is unchanged.
    fim = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
    assert tok.convert_tokens_to_ids(fim) == [VOCAB, VOCAB + 1, VOCAB + 2, VOCAB + 3]
    assert config["vocab_size"] == VOCAB + 4 and direct.config.vocab_size == VOCAB
    assert torch.equal(ours_logits[..., :VOCAB], direct_logits)
    # Their rows (tied embeddings) are the mean of the checkpoint's rows, so their logits are all alike.
    embeddings = ours.get_input_embeddings().weight
    mean = direct.get_input_embeddings().weight.mean(dim=0).to(torch.bfloat16).float()
    assert torch.equal(embeddings[VOCAB:], mean.expand(4, -1))
    assert torch.equal(ours.get_output_embeddings().weight[VOCAB:], embeddings[VOCAB:])


def test_older_published_config_loads_without_remote_code(layout, tmp_path):
    """The published config.json may lack model_type (and rope_theta, tie_word_embeddings): transformers' Auto
    classes then insist on its remote code; our loader uses our classes and the published defaults."""
    from transformers import AutoModelForCausalLM

    copy = tmp_path / "older"
    shutil.copytree(layout, copy)
    config = json.loads((copy / "config.json").read_text())
    for key in ("model_type", "rope_theta", "tie_word_embeddings"):
        del config[key]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="custom code"):
        AutoModelForCausalLM.from_pretrained(copy, trust_remote_code=False)
    model = load_pretrained(copy)
    assert (model.config.rope_theta, model.config.tie_word_embeddings, model.dtype) == (10000.0, True, torch.bfloat16)
    check_pretrained_config(model.config, ModelSettings(**SETTINGS), copy)


def test_mismatch_with_config_names_field_and_values(layout, tokenizer_dir, tmp_path):
    settings = ModelSettings(**{**SETTINGS, "pretrained": str(layout), "hidden_size": 256, "init_std": 0.02})
    with pytest.raises(InputError) as error:
        init_model(settings, tokenizer_dir, tmp_path / "x", 0)
    message = str(error.value)
    assert "model.hidden_size is 256 but the checkpoint's hidden_size is 128" in message
    assert "model.init_std is 0.02 but the checkpoint's initializer_range is 0.1" in message
    assert not (tmp_path / "x").exists()


def test_paper_config_documents_the_published_numbers():
    """config/abacus-2.7b.yaml's model section passes the check against the published config.json."""
    from abacus_repro.model.configuration import MiniCPMConfig

    paper = ModelSettings(**yaml.safe_load((REPO / "config" / "abacus-2.7b.yaml").read_text())["model"])
    check_pretrained_config(MiniCPMConfig.from_dict(dict(PUBLISHED_CONFIG)), paper, Path(paper.pretrained))
    with pytest.raises(InputError, match="num_hidden_layers is 24 but the checkpoint's num_hidden_layers is 40"):
        check_pretrained_config(MiniCPMConfig.from_dict(dict(PUBLISHED_CONFIG)),
                                paper.model_copy(update={"num_hidden_layers": 24}), Path(paper.pretrained))  # fmt: skip


def test_missing_tensor_is_refused(layout, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "truncated"
    shutil.copytree(layout, copy)
    weights = load_file(copy / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(InputError, match=r"missing_keys.*model\.layers\.1\.mlp\.up_proj\.weight"):
        load_pretrained(copy)


def test_gguf_export_of_the_published_layout(initialised, tmp_path):
    """The LLM server serves a GGUF of this checkpoint: bf16 weights and the converted SentencePiece tokenizer
    export, and llama.cpp tokenizes and predicts as transformers does."""
    pytest.importorskip("llama_cpp")
    from abacus_repro.export import export_all, gguf_metadata
    from abacus_repro.settings import ExportSettings

    report = export_all(initialised, [tmp_path / "m-F16.gguf"], tmp_path / "verify.json", ExportSettings(), threads=2)
    f16 = report["files"]["F16"]
    assert report["passed"] and f16["tokenization_equal"]
    assert f16["vs_hf"]["top1_agreement_beyond_ties"] == 1.0 and f16["greedy_equal_up_to_ties"]
    meta = gguf_metadata(tmp_path / "m-F16.gguf")
    assert meta["tokenizer.ggml.model"] == "llama" and meta["tokenizer.ggml.add_space_prefix"] is True
    # The appended FIM markers: named for llama.cpp, which tokenizes an infill prompt as transformers does.
    assert [meta[f"tokenizer.ggml.fim_{name}_token_id"] for name in ("pre", "mid", "suf", "pad")] == [
        VOCAB,
        VOCAB + 1,
        VOCAB + 2,
        VOCAB + 3,
    ]
    import llama_cpp
    from transformers import AutoTokenizer

    llama = llama_cpp.Llama(model_path=str(tmp_path / "m-F16.gguf"), vocab_only=True, verbose=False)
    prompt = "<fim_prefix>def 平方(x):\n    return <fim_suffix>\n\nprint(平方(3))<fim_middle>"
    expected = AutoTokenizer.from_pretrained(initialised)(prompt)["input_ids"]
    assert [VOCAB, VOCAB + 2, VOCAB + 1] == [t for t in expected if t >= VOCAB]
    assert llama.tokenize(prompt.encode(), add_bos=True, special=True) == expected


def test_character_level_fim_gives_the_ids_of_the_infill_text(tokenizer_dir):
    """With SentencePiece's dummy prefix, each part tokenized alone carries its "▁" exactly as the parts of the
    whole FIM text do (legacy spacing: one after every special token), so packing trains on what a prompt is."""
    from abacus_repro.settings import FimSettings
    from abacus_repro.tokenization import tokenize_and_pack
    from abacus_repro.tokenization.fim import FimPlan, draw_cut, split_text

    tokenizer = load_tokenizer(tokenizer_dir)
    texts = [text for text in PROBE_TEXTS if text.strip()]
    docs = [{"id": f"probe{i}", "text": text, "source": "code", "meta": "{}"} for i, text in enumerate(texts)]
    plan = FimPlan(FimSettings(rate=1.0, spm_rate=0.5), seed=3)
    packed = tokenize_and_pack(docs, tokenizer, 512, sft=False, fim=plan)
    rows = {tuple(packed.tokens[0, packed.segments[0] == s].tolist()) for s in range(len(docs))}
    expected = set()
    for doc in docs:
        cut = draw_cut(plan, doc["id"], len(doc["text"]))
        prefix, middle, suffix = split_text(doc["text"], cut)
        order = [("<fim_prefix>", prefix), ("<fim_suffix>", suffix)]
        text = "".join(f"{marker}{part}" for marker, part in (order if cut.mode == "psm" else order[::-1]))
        ids = tokenizer(f"{text}<fim_middle>{middle}", add_special_tokens=False)["input_ids"]
        expected.add((*ids, tokenizer.eos_token_id))
    assert packed.tokens.shape[0] == 1 and rows == expected
    assert packed.meta["fim"]["psm_documents"] + packed.meta["fim"]["spm_documents"] == len(docs)


def test_only_the_fim_markers_may_follow_the_checkpoints_vocabulary(layout, tokenizer_dir, tmp_path):
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.add_tokens(["<extra>"], special_tokens=True)
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    settings = ModelSettings(**{**SETTINGS, "pretrained": str(layout)})
    with pytest.raises(InputError, match=f"has {VOCAB + 5} tokens but the checkpoint's vocab_size is {VOCAB}"):
        init_model(settings, tmp_path / "tok" / "tokenizer.json", tmp_path / "x", 0)
    assert not (tmp_path / "x").exists()
