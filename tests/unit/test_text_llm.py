"""LLM client details a real server cannot be made to show on demand, and backend errors.

The openai backend's normal life (concurrency, cache, resume, timeouts, a dying server, garbage replies, a
refused prompt) is tested against the real llama.cpp server in test_text_llm_server.py. What stays here needs
exact HTTP statuses that llama-cpp-python's server never sends when asked: 503 then success (retries), 429
forever (gives up, nothing cached), and a Retry-After header (the OpenAI SDK under our client waits as asked);
plus a port with nothing listening.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from abacus_repro.errors import InputError
from abacus_repro.llm import LLMError, get_client
from abacus_repro.settings import JudgeSettings
from abacus_repro.text.judge import client_from_settings


class _ChatServer(ThreadingHTTPServer):
    """Answers POST /v1/chat/completions in OpenAI's schema; can fail the next N requests with a given status."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.requests = 0
        self.fail_next = 0
        self.fail_status = 503
        self.retry_after: str | None = None  # the Retry-After header of a failing reply
        self.lock = threading.Lock()


class _ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests += 1
            failing = server.fail_next > 0
            server.fail_next -= 1 if failing else 0
        prompt = body["messages"][-1]["content"]
        if self.path != "/v1/chat/completions" or "model" not in body:
            self._send(404, {"error": "not found"})
        elif failing:
            headers = {"Retry-After": server.retry_after} if server.retry_after else {}
            self._send(server.fail_status, {"error": {"message": "try later"}}, headers)
        else:
            reply = f"{body['model']}:{prompt[::-1]}"
            self._send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                    ],
                },
            )

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = _ChatServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(server, tmp_path, **kw):
    settings = {
        "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1",
        "model": "judge-7b",
        "cache_dir": tmp_path / "cache",
        "retries": 2,
        "timeout": 5,
    }
    settings.update(kw)
    return get_client("openai", **settings)


def test_openai_backend_retries_server_errors(server, tmp_path):
    server.fail_next = 2
    client = _client(server, tmp_path, retries=3, concurrency=1)
    assert client.complete(["hello"]) == ["judge-7b:olleh"]
    assert client.requests_sent == 3 and server.requests == 3


def test_openai_backend_gives_up_after_retries(server, tmp_path):
    server.fail_next = 100
    server.fail_status = 429
    client = _client(server, tmp_path, retries=2)
    with pytest.raises(LLMError, match="giving up after 3 attempts"):
        client.complete(["hello"])
    assert server.requests == 3
    assert client.cached_count() == 0  # failures are never cached


def test_retry_after_is_honoured(server, tmp_path):
    """A 429 asking for 2 s: the retry waits that long (the SDK's own first back-off is at most 0.5 s)."""
    server.fail_next = 1
    server.fail_status = 429
    server.retry_after = "2"
    client = _client(server, tmp_path, retries=1)
    started = time.monotonic()
    assert client.complete(["hello"]) == ["judge-7b:olleh"]
    assert time.monotonic() - started >= 2.0
    assert client.requests_sent == 2 and client.cache_hits == 0


def test_answers_are_cached_across_clients(server, tmp_path):
    """A cached reply is reused by a new client on the same cache directory (a re-run): no request is sent."""
    first = _client(server, tmp_path)
    assert first.complete(["hello", "world"]) == ["judge-7b:olleh", "judge-7b:dlrow"]
    again = _client(server, tmp_path)
    assert again.complete(["world", "hello"]) == ["judge-7b:dlrow", "judge-7b:olleh"]
    assert again.requests_sent == 0 and again.cache_hits == 2 and again.cached_count() == 2
    assert server.requests == 2


def test_openai_backend_unreachable_server(tmp_path):
    client = get_client("openai", base_url="http://127.0.0.1:9/v1", model="m", retries=1, timeout=2)
    with pytest.raises(LLMError, match="giving up"):
        client.complete(["x"])


def test_backend_errors_are_clear():
    with pytest.raises(InputError, match="unknown LLM backend"):
        get_client("llama-magic")
    with pytest.raises(InputError, match="base_url and model"):
        get_client("openai", base_url="", model="")
    with pytest.raises(InputError, match="bad settings"):
        get_client("openai", base_url="http://x", model="m", temprature=0.1)
    with pytest.raises(LLMError, match="responder"):
        get_client("metadata").complete(["x"])
    with pytest.raises(InputError, match="model_dir"):
        get_client("transformers", model_dir="/nonexistent/model")
    with pytest.raises(InputError, match="text.judge.base_url"):
        client_from_settings(JudgeSettings(backend="openai", model="m"))


def test_transformers_backend_generates_greedily_from_a_local_model(tmp_path):
    """A tiny randomly initialised GPT-2 and a BPE tokenizer trained here: real loading and generation."""
    torch = pytest.importorskip("torch")
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ["score the thread from one to five"] * 20, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=16,
        n_layer=1,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(tmp_path)

    client = get_client("transformers", model_dir=str(tmp_path), batch_size=2, max_new_tokens=4)
    prompts = ["score the thread", "one to five please score this thread", "five"]
    first = client.complete(prompts)
    assert len(first) == 3 and all(isinstance(text, str) for text in first)
    assert client.complete(prompts) == first  # greedy: deterministic
    assert client.name == f"transformers:{tmp_path.name}"
