"""Served for real: llama-cpp-python's OpenAI-compatible server on an exported Q8_0 file answers a chat request,
and the prompt it builds from the GGUF's chat template is exactly MiniCPM's ``<用户>{message}<AI>``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from abacus_repro.export import write_gguf

from .model_fixtures import make_model, make_tokenizer

pytest.importorskip("llama_cpp")
pytest.importorskip("uvicorn")  # the server extras

MESSAGE = "写一个函数，判断一个数是否为素数。"
STARTUP_TIMEOUT_S = 20


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict, timeout: float = 20) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def _wait_until_up(base: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/v1/models", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"server not up after {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A small random MiniCPM exported to Q8_0 and served on a free localhost port; always stopped at the end."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("served")
    tokenizer_dir = make_tokenizer(root / "tok", vocab_size=1024, max_chars=200_000)
    model_dir = make_model(root / "model", tokenizer_dir, hidden_size=64, intermediate_size=160)
    gguf_path = write_gguf(model_dir, root / "model-Q8_0.gguf", "Q8_0")
    port = _free_port()
    log_path = root / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", "256", "--n_threads", "1", "--logits_all", "true"]
    command += ["--verbose", "false"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "*"})
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process, log_path)
        yield base, AutoTokenizer.from_pretrained(str(model_dir))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _greedy(base: str, route: str, body: dict) -> dict:
    return _post(base + route, {"temperature": 0.0, "max_tokens": 8, "seed": 0, **body})


def test_chat_completion_goes_through_the_minicpm_template(served):
    base, tokenizer = served
    expected_ids = tokenizer(f"<用户>{MESSAGE}<AI>")["input_ids"]
    assert expected_ids[0] == tokenizer.convert_tokens_to_ids("<用户>")
    assert expected_ids[-1] == tokenizer.convert_tokens_to_ids("<AI>")

    chat = _greedy(
        base,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": MESSAGE}], "logprobs": True, "top_logprobs": 3},
    )
    answer = chat["choices"][0]
    assert answer["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] >= 1
    assert answer["finish_reason"] in ("stop", "length")

    # The server's own tokenizer turns "<用户>{message}<AI>" into our tokenizer's ids, <用户> and <AI> whole.
    expected_prompt = f"<用户>{MESSAGE}<AI>"
    assert _post(base + "/extras/tokenize", {"input": expected_prompt})["tokens"] == expected_ids

    # A plain completion of exactly that text continues identically: same prompt length, same text, same numbers.
    raw = _greedy(base, "/v1/completions", {"prompt": expected_prompt, "logprobs": 3})
    assert chat["usage"]["prompt_tokens"] == raw["usage"]["prompt_tokens"] == len(expected_ids)
    assert answer["message"]["content"] == raw["choices"][0]["text"]
    chat_logprobs = [t["logprob"] for t in answer["logprobs"]["content"]]
    raw_logprobs = raw["choices"][0]["logprobs"]["token_logprobs"]
    assert len(chat_logprobs) == len(raw_logprobs) == chat["usage"]["completion_tokens"]
    assert chat_logprobs == pytest.approx(raw_logprobs, abs=1e-4)

    # Control: without "<AI>" the context differs and so do the numbers (the comparison above can fail).
    other = _greedy(base, "/v1/completions", {"prompt": f"<用户>{MESSAGE}", "logprobs": 3})
    assert other["choices"][0]["logprobs"]["token_logprobs"] != pytest.approx(raw_logprobs, abs=1e-4)


def test_infill_prompt_through_the_completions_endpoint(served):
    """llama-cpp-python's server has no /infill route (llama.cpp's own llama-server has): an infill request is a
    plain completion of the PSM text, whose FIM markers the server tokenizes as the single ids packing used."""
    from abacus_repro.model.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
    from abacus_repro.tokenization.fim import PSM, fim_ids, layout

    base, tokenizer = served
    prefix, suffix = "def square(x):\n    return ", "\n\nprint(square(3))\n"
    prompt = f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"
    parts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in (prefix, suffix)]
    expected_ids = layout(PSM, parts[0], [], parts[1], fim_ids(tokenizer))
    assert _post(base + "/extras/tokenize", {"input": prompt})["tokens"] == expected_ids

    answer = _greedy(base, "/v1/completions", {"prompt": prompt})
    assert answer["usage"]["prompt_tokens"] == len(expected_ids)
    assert answer["usage"]["completion_tokens"] >= 1
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")

    with pytest.raises(urllib.error.HTTPError) as missing:
        _post(base + "/infill", {"input_prefix": prefix, "input_suffix": suffix})
    assert missing.value.code == 404


def _llama_server() -> str | None:
    """llama.cpp's own server: `make llama-server` builds it into the venv from the pinned llama.cpp source."""
    built = os.path.join(os.path.dirname(sys.executable), "llama-server")
    return os.environ.get("ABACUS_LLAMA_SERVER") or (built if os.path.exists(built) else None)


@pytest.mark.skipif(_llama_server() is None, reason="llama.cpp's llama-server not built (make llama-server)")
def test_llama_server_infill_reads_the_fim_tokens_from_the_gguf(tmp_path):
    """The endpoint editor plugins call: llama-server builds the PSM prompt from the GGUF's fim_* token ids."""
    from abacus_repro.model.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

    tokenizer_dir = make_tokenizer(tmp_path / "tok", vocab_size=1024, max_chars=200_000)
    model_dir = make_model(tmp_path / "model", tokenizer_dir, hidden_size=64, intermediate_size=160)
    gguf_path = write_gguf(model_dir, tmp_path / "model-F16.gguf", "F16")
    port = _free_port()
    log_path = tmp_path / "llama-server.log"
    command = [_llama_server(), "-m", str(gguf_path), "--host", "127.0.0.1", "--port", str(port), "-c", "256"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command + ["-t", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process, log_path)
        prefix, suffix = "def square(x):\n    return ", "\n\nprint(square(3))\n"
        answer = _post(base + "/infill", {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 4})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert answer["prompt"] == f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"
    assert answer["tokens_predicted"] >= 1
