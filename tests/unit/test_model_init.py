"""init_model: a seeded tiny MiniCPM with the run's tokenizer, saved as a Hugging Face directory."""

from __future__ import annotations

import json

import pytest
import torch

from abacus_repro.errors import InputError
from abacus_repro.model.init import init_model
from abacus_repro.settings import ModelSettings

from .model_fixtures import TINY_MODEL, make_model, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"), vocab_size=800, max_chars=150_000)


def test_init_is_seeded_and_complete(tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = make_model(tmp_path / "a", tokenizer_dir, seed=5)
    b = make_model(tmp_path / "b", tokenizer_dir, seed=5)
    c = make_model(tmp_path / "c", tokenizer_dir, seed=6)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()

    config = json.loads((a / "config.json").read_text())
    assert config["model_type"] == "minicpm"
    assert (config["vocab_size"], config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        800, 1, 2, 3,
    )  # fmt: skip
    assert config["initializer_range"] == TINY_MODEL["init_std"]

    model = AutoModelForCausalLM.from_pretrained(a)
    tok = AutoTokenizer.from_pretrained(a)
    weight = model.model.layers[0].mlp.up_proj.weight
    assert abs(float(weight.detach().std()) - TINY_MODEL["init_std"]) < 0.01
    with torch.no_grad():
        out = model(torch.tensor([tok("def f(x): return x")["input_ids"]]))
    assert out.logits.shape[-1] == 800


def test_pretrained_checkpoint_is_resaved(tokenizer_dir, tmp_path):
    source = make_model(tmp_path / "published", tokenizer_dir, seed=9)
    settings = ModelSettings(**TINY_MODEL, pretrained=str(source))
    out = init_model(settings, tokenizer_dir / "tokenizer.json", tmp_path / "init", seed=0)
    assert (out / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    nowhere = settings.model_copy(update={"pretrained": str(tmp_path / "nowhere")})
    with pytest.raises(InputError, match="local checkpoint"):
        init_model(nowhere, tokenizer_dir, tmp_path / "x", seed=0)
