"""Saved model directories load as the seed's Abacus does: plain transformers with ``trust_remote_code=True``.

The seed's users never import this package; they run ``AutoModelForCausalLM.from_pretrained(path,
trust_remote_code=True)`` and ``AutoTokenizer.from_pretrained(path)``, apply the chat template and stream with
``TextStreamer``. So the loading half of these tests runs in a fresh interpreter in which ``abacus_repro`` cannot be
imported, and its results are compared with this process's own class on the same directory.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from abacus_repro.imports import import_statements
from abacus_repro.model import MiniCPMForCausalLM
from abacus_repro.model.init import init_model
from abacus_repro.model.tokenizer import AI_TAG, CHAT_TEMPLATE, USER_TAG
from abacus_repro.pretrain.trainer import save_model
from abacus_repro.settings import ModelSettings

from .model_fixtures import TINY_MODEL, make_model, make_tokenizer

CODE_FILES = {"modeling.py", "configuration.py", "attention.py"}
AUTO_MAP = {
    "AutoConfig": "configuration.MiniCPMConfig",
    "AutoModel": "modeling.MiniCPMModel",
    "AutoModelForCausalLM": "modeling.MiniCPMForCausalLM",
}
# What the published MiniCPM-2B checkpoint's config.json maps: files our re-save does not carry.
PUBLISHED_AUTO_MAP = {
    "AutoConfig": "configuration_minicpm.MiniCPMConfig",
    "AutoModel": "modeling_minicpm.MiniCPMModel",
    "AutoModelForCausalLM": "modeling_minicpm.MiniCPMForCausalLM",
    "AutoModelForSequenceClassification": "modeling_minicpm.MiniCPMForSequenceClassification",
}
PROMPT = "def quick_sort(items):\n    "
CHAT = [{"role": "user", "content": "请你用python写一段快速排序的代码"}]
NEW_TOKENS = 12

# Runs in a fresh interpreter (-I: no PYTHONPATH, no user site, no cwd on sys.path). The venv has this package
# installed (editable), so a finder in front of sys.meta_path hides it: the child is a user's environment without
# abacus_repro, and saved code that reached for the package would fail to load instead of passing silently.
CHILD = r'''
import importlib.abc
import json
import sys


class HidePackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "abacus_repro":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, HidePackage())
try:
    import abacus_repro  # noqa: F401
    hidden = False
except ModuleNotFoundError:
    hidden = True

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer

model_dir, out_dir = sys.argv[1], sys.argv[2]
request = json.loads(open(f"{out_dir}/request.json", encoding="utf-8").read())
torch.set_num_threads(1)

model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True, dtype=torch.float32).eval()
tokenizer = AutoTokenizer.from_pretrained(model_dir)


class RecordingStreamer(TextStreamer):
    """TextStreamer as in the seed's example, also keeping what it was handed and what it printed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ids, self.text = [], ""

    def put(self, value):
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.ids.extend(value.reshape(-1).tolist())
        super().put(value)

    def on_finalized_text(self, text, stream_end=False):
        self.text += text
        super().on_finalized_text(text, stream_end)


with torch.no_grad():
    logits = model(torch.tensor([request["prompt_ids"]])).logits
torch.save(logits, f"{out_dir}/logits.pt")

chat_text = tokenizer.apply_chat_template(request["chat"], tokenize=False, add_generation_prompt=True)
# As in the seed's example; transformers 5 returns a BatchEncoding here (4.x gave the ids), so it is unpacked below.
inputs = tokenizer.apply_chat_template(request["chat"], tokenize=True, add_generation_prompt=True, return_tensors="pt")
prompt_len = inputs["input_ids"].shape[1]
streamer = RecordingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
streamed = model.generate(**inputs, streamer=streamer, do_sample=False, max_new_tokens=request["new_tokens"])
greedy = model.generate(**inputs, do_sample=False, max_new_tokens=request["new_tokens"])

# A user who fine-tunes the loaded model and saves it must get a directory that loads the same way.
model.save_pretrained(f"{out_dir}/resaved")

result = {
    "hidden": hidden,
    "package_loaded": "abacus_repro" in sys.modules,
    "model_module": type(model).__module__,
    "model_class": type(model).__name__,
    "chat_text": chat_text,
    "chat_ids": inputs["input_ids"][0].tolist(),
    "streamer_ids": streamer.ids,
    "streamer_text": streamer.text,
    "streamed_ids": streamed[0, prompt_len:].tolist(),
    "greedy_ids": greedy[0, prompt_len:].tolist(),
    "greedy_text": tokenizer.decode(greedy[0, prompt_len:], skip_special_tokens=True),
}
open(f"{out_dir}/result.json", "w", encoding="utf-8").write(json.dumps(result, ensure_ascii=False))
'''


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"), vocab_size=800, max_chars=150_000)


@pytest.fixture(scope="module")
def model_dir(tokenizer_dir, tmp_path_factory):
    # scale_emb 1: in an untrained tied model a large embedding scale makes greedy decoding repeat the prompt's
    # last token (<AI>, which skip_special_tokens hides); at 1 it walks through ordinary tokens the streamer prints.
    return make_model(tmp_path_factory.mktemp("model") / "init", tokenizer_dir, seed=7, scale_emb=1)


def run_without_package(model_dir: Path, out_dir: Path, request: dict) -> dict:
    """Run CHILD on ``model_dir`` in an interpreter that cannot import abacus_repro; its result.json."""
    out_dir.mkdir(parents=True)
    (out_dir / "request.json").write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    script = out_dir / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {
        **os.environ,
        # transformers copies remote code here; keep it out of the user's cache.
        "HF_MODULES_CACHE": str(out_dir / "hf_modules"),
        "HF_HUB_OFFLINE": "1",
    }
    # stdin closed: AutoTokenizer (transformers 5) reads the config first and, not knowing model type minicpm,
    # asks whether to trust the remote code; with no answer it reads the config generically, as for the seed's
    # users who pass no trust_remote_code to the tokenizer.
    proc = subprocess.run(
        [sys.executable, "-I", str(script), str(model_dir), str(out_dir)],
        check=False,  # a failure is reported below with the child's stderr
        cwd=out_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"loading without the package failed:\n{proc.stderr[-4000:]}"
    return json.loads((out_dir / "result.json").read_text(encoding="utf-8"))


def test_saved_directory_carries_its_code(model_dir):
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"] == AUTO_MAP
    # vLLM picks its own MiniCPM implementation by these two.
    assert config["architectures"] == ["MiniCPMForCausalLM"]
    assert config["model_type"] == "minicpm"
    assert CODE_FILES <= {path.name for path in model_dir.glob("*.py")}
    assert_self_contained(model_dir)


def assert_self_contained(model_dir: Path) -> None:
    """Every saved module imports only the standard library, torch, transformers and saved siblings."""
    saved = {path.stem for path in model_dir.glob("*.py")}
    allowed = set(sys.stdlib_module_names) | {"torch", "transformers"}
    for path in model_dir.glob("*.py"):
        for statement in import_statements(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}: {statement.kind} {'.' * statement.level}{statement.module}"
            if statement.level:
                assert statement.level == 1 and statement.module in saved, where
            else:
                assert statement.module.split(".")[0] in allowed, where


def test_saved_tokenizer_carries_the_chat_template(model_dir):
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"] == CHAT_TEMPLATE


def test_loads_without_the_package_as_the_seed_does(model_dir, tmp_path, one_thread):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    result = run_without_package(
        model_dir, tmp_path / "child", {"prompt_ids": prompt_ids, "chat": CHAT, "new_tokens": NEW_TOKENS}
    )

    assert result["hidden"] and not result["package_loaded"]
    assert result["model_module"].startswith("transformers_modules.")
    assert result["model_class"] == "MiniCPMForCausalLM"

    # The same numbers as the package's own class on the same directory.
    ours = MiniCPMForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = ours(torch.tensor([prompt_ids])).logits
    torch.testing.assert_close(torch.load(tmp_path / "child" / "logits.pt"), expected, rtol=0, atol=1e-6)

    # MiniCPM's chat format, and the ids the package's tokenizer gives for it.
    question = CHAT[0]["content"]
    assert result["chat_text"] == f"{USER_TAG}{question}{AI_TAG}"
    assert result["chat_ids"] == tokenizer(result["chat_text"])["input_ids"]

    # Streaming changes nothing: the streamer saw and printed exactly what greedy decoding produced.
    assert len(result["greedy_ids"]) == NEW_TOKENS
    assert result["streamed_ids"] == result["greedy_ids"] == result["streamer_ids"]
    assert result["greedy_text"].strip(), "greedy decoding produced only special tokens; the check would be empty"
    assert result["streamer_text"] == result["greedy_text"]

    # Greedy decoding with the package's class continues the chat prompt the same way.
    with torch.no_grad():
        chat_ids = torch.tensor([result["chat_ids"]])
        ours_greedy = ours.generate(chat_ids, do_sample=False, max_new_tokens=NEW_TOKENS)
    assert ours_greedy[0, chat_ids.shape[1] :].tolist() == result["greedy_ids"]

    # A directory re-saved from the remote-code model carries the same code and map.
    resaved = tmp_path / "child" / "resaved"
    assert json.loads((resaved / "config.json").read_text(encoding="utf-8"))["auto_map"] == AUTO_MAP
    for name in CODE_FILES:
        assert (resaved / name).read_bytes() == (model_dir / name).read_bytes()


def test_package_loading_is_unchanged(model_dir):
    """With the package imported, the Auto classes give its own class, with or without trust_remote_code."""
    from transformers import AutoModelForCausalLM

    for trust in (False, True):
        model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=trust)
        assert type(model) is MiniCPMForCausalLM


def test_published_map_is_replaced_and_training_saves_carry_code(model_dir, tokenizer_dir, tmp_path):
    # A local copy of a published checkpoint: its config names modeling_minicpm.py, which is not shipped here.
    published = tmp_path / "published"
    published.mkdir()
    for path in model_dir.iterdir():
        if path.is_file() and path.suffix != ".py":
            (published / path.name).write_bytes(path.read_bytes())
    config = json.loads((published / "config.json").read_text(encoding="utf-8"))
    (published / "config.json").write_text(json.dumps({**config, "auto_map": PUBLISHED_AUTO_MAP}), encoding="utf-8")

    settings = ModelSettings(**{**TINY_MODEL, "scale_emb": 1, "pretrained": str(published)})  # model_dir's numbers
    init = init_model(settings, tokenizer_dir, tmp_path / "init", seed=0)
    assert json.loads((init / "config.json").read_text(encoding="utf-8"))["auto_map"] == AUTO_MAP

    # A training phase's output: the trainer loads the previous directory and writes through save_model.
    model = MiniCPMForCausalLM.from_pretrained(init)
    phase = tmp_path / "phase"
    save_model(model, init, phase, {"phase": "base"})
    assert json.loads((phase / "config.json").read_text(encoding="utf-8"))["auto_map"] == AUTO_MAP
    for name in CODE_FILES:
        assert (phase / name).read_bytes() == (model_dir / name).read_bytes()
    assert_self_contained(phase)
