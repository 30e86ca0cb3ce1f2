"""Greedy batched generation: left padding changes nothing, stop sequences cut, prompt styles resolve."""

from __future__ import annotations

import pytest

from abacus_repro.errors import InputError
from abacus_repro.evaluate.generation import (
    generate_greedy,
    load_model,
    resolve_model_ref,
    resolve_prompt_style,
    truncate_at_stop,
)

from .evaluate_fixtures import ARCHITECTURES, build_tiny_model


@pytest.fixture(scope="module", params=ARCHITECTURES)
def chat_model(tmp_path_factory, request):
    directory = tmp_path_factory.mktemp(f"chat-{request.param}")
    return load_model(build_tiny_model(directory, chat=True, arch=request.param), threads=1)


def test_batched_left_padded_equals_one_by_one(chat_model):
    model, tokenizer = chat_model
    prompts = ["def add(a, b):\n", 'def is_even(n: int) -> bool:\n    """Return True', "x"]
    batched = generate_greedy(model, tokenizer, prompts, max_new_tokens=12, batch_size=3)
    single = [generate_greedy(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert batched == generate_greedy(model, tokenizer, prompts, max_new_tokens=12, batch_size=2)


def test_stop_sequences_cut_the_completion(chat_model):
    model, tokenizer = chat_model
    free = generate_greedy(model, tokenizer, ["def add(a, b):\n"], max_new_tokens=12, batch_size=8)[0]
    assert len(free) > 2
    stop = free[1:3]
    cut = generate_greedy(
        model, tokenizer, ["def add(a, b):\n"], max_new_tokens=12, batch_size=8, stop_sequences=[stop]
    )[0]
    assert cut == free[: free.index(stop)]


def test_truncate_at_earliest_stop():
    text = "    return a\n\nprint(add(1, 2))\ndef other():\n"
    assert truncate_at_stop(text, ["\ndef ", "\nprint("]) == "    return a\n"
    assert truncate_at_stop("no stop here", ["\ndef "]) == "no stop here"


def test_prompt_style(chat_model, tmp_path):
    _model, tokenizer = chat_model
    assert resolve_prompt_style(tokenizer, "auto") == "chat"
    assert resolve_prompt_style(tokenizer, "base") == "base"
    _base_model, base_tokenizer = load_model(build_tiny_model(tmp_path / "base", chat=False))
    assert resolve_prompt_style(base_tokenizer, "auto") == "base"
    with pytest.raises(InputError, match="no chat template"):
        resolve_prompt_style(base_tokenizer, "chat")
    with pytest.raises(InputError, match="prompt_style"):
        resolve_prompt_style(tokenizer, "fancy")


def test_missing_model_directory_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no config.json"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no config.json"):
        resolve_model_ref("results/train/sft/model")  # a workflow path that is not there yet is no hub id
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        resolve_model_ref(tmp_path / "empty")


def test_hub_ids_are_passed_on_and_directories_win(tmp_path, monkeypatch):
    assert resolve_model_ref("deepseek-ai/deepseek-coder-1.3b-instruct") == "deepseek-ai/deepseek-coder-1.3b-instruct"
    assert resolve_model_ref("gpt2") == "gpt2"
    # A directory of that name in the working directory is a local model, never a download.
    monkeypatch.chdir(tmp_path)
    build_tiny_model(tmp_path / "gpt2", chat=False)
    assert resolve_model_ref("gpt2") == "gpt2" and (tmp_path / "gpt2" / "config.json").is_file()
    model, _tokenizer = load_model("gpt2")
    assert model.config.hidden_size == 32  # the local toy model, not the hub's GPT-2
