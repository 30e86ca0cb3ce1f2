"""The judge's LLM backends against real models: llama-cpp-python's OpenAI-compatible server serving a tiny
MiniCPM exported to GGUF here, and the same model through the transformers backend.

No mock server: the server is the real one, started on 127.0.0.1 per test module; the misbehaving servers are
the real one too, frozen with SIGSTOP (slow: timeouts), killed with SIGKILL (dies mid-run), replying with the
untrained model's free text (garbage: the parser rejects and counts), or refusing a prompt longer than its
context (HTTP 400: counted, not fatal).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from diskcache import Cache

from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.io import doc_meta, make_doc
from abacus_repro.llm import LLMError, PromptRejected, get_client
from abacus_repro.settings import JudgeSettings, StackExchangeSettings
from abacus_repro.text.judge import client_from_settings, judge_documents

from .model_fixtures import make_model, make_tokenizer

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")

SAMPLE = "data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml"
SCORE_GRAMMAR = {"grammar": "root ::= [1-5]"}  # llama.cpp's constrained decoding: one digit 1-5
N_CTX = 2048
EOS_ID = 2  # the project's tokenizer: <s>=1, </s>=2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny MiniCPM (random weights, the project's own tokenizer) as a Hugging Face directory."""
    root = tmp_path_factory.mktemp("judge-model")
    tokenizer = make_tokenizer(root / "tokenizer", vocab_size=512, max_chars=150_000)
    small = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 2}
    return make_model(root / "model", tokenizer, num_key_value_heads=2, dim_model_base=32, **small)


@pytest.fixture(scope="module")
def gguf(tiny_model, tmp_path_factory) -> Path:
    from abacus_repro.export import write_gguf

    return write_gguf(tiny_model, tmp_path_factory.mktemp("gguf") / "judge-F16.gguf", "F16")


class LlamaServer:
    """``python -m llama_cpp.server`` on a free localhost port; start, freeze, resume, kill."""

    def __init__(self, model: Path, log_path: Path):
        self.model = model
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> LlamaServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--n_ctx", str(N_CTX), "--n_threads", "1", "--n_threads_batch", "1"]
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"llama_cpp.server did not come up on port {self.port}:\n{tail}")

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    srv = LlamaServer(gguf, tmp_path_factory.mktemp("server") / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def threads():
    docs, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    return docs


def _settings(base_url: str, cache_dir: Path, **overrides) -> JudgeSettings:
    settings = {
        "backend": "openai",
        "base_url": base_url,
        "model": "tiny-minicpm",
        "timeout_s": 20,
        "max_retries": 2,
        "concurrency": 4,
        "cache_dir": str(cache_dir),
        "max_chars": 1500,
        # Free-text replies (the grammar of extra_body, or none): the JSON-schema constraint is test_llm_server's.
        "constrain": "none",
    }
    settings.update(overrides)
    return JudgeSettings(**settings)


def _judge(docs, settings: JudgeSettings, sample_size: int, seed: int = 3):
    client = client_from_settings(settings)
    judge = settings.model_copy(update={"sample_size": sample_size, "batch_size": 8})
    labels, stats = judge_documents(docs, client, judge, seed=seed)
    return labels, stats, client


def test_judge_through_a_real_server_concurrent_cached_and_resumable(server, threads, tmp_path):
    """Grammar-constrained replies from the real server: every sampled thread scored; a re-run asks nothing."""
    settings = _settings(server.base_url, tmp_path / "cache", extra_body=SCORE_GRAMMAR)
    labels, stats, _ = _judge(threads, settings, sample_size=16)
    assert stats["sampled"] == 16 and stats["labelled"] == 16 and stats["rejected"] == 0
    assert stats["requests"]["answered_by_server"] == 16 and stats["requests"]["from_cache"] == 0
    assert sum(stats["score_histogram"].values()) == 16
    assert {doc_meta(d)["judge"] for d in labels} == {"openai:tiny-minicpm"}

    again, stats_again, client = _judge(threads, settings, sample_size=16)
    assert again == labels  # same labels, byte for byte, from the cache
    assert stats_again["requests"] == {"answered_by_server": 0, "from_cache": 16, "http_attempts": 0}

    # Four requests in flight or one at a time: the same answers in the same order (greedy, constrained).
    serial, _, _ = _judge(
        threads,
        _settings(server.base_url, tmp_path / "serial", extra_body=SCORE_GRAMMAR, concurrency=1),
        sample_size=16,
    )
    assert serial == labels
    assert client.cache_key("p") != get_client("openai", base_url=server.base_url, model="tiny-minicpm").cache_key("p")


def test_garbage_replies_are_rejected_and_counted(server, threads, tmp_path):
    """Unconstrained, the untrained model writes free text: the strict parser rejects it and counts it."""
    settings = _settings(server.base_url, tmp_path / "cache", max_tokens=12)
    labels, stats, _ = _judge(threads, settings, sample_size=12)
    assert stats["sampled"] == 12 == stats["labelled"] + stats["rejected"]
    assert stats["rejected_by_reason"].get("unparseable_score", 0) == stats["rejected"] >= 1
    assert stats["rejected_examples"] and all("reply" in example for example in stats["rejected_examples"])
    assert all(1 <= doc_meta(d)["judge_score"] <= 5 for d in labels)


def test_prompt_longer_than_the_context_is_rejected_not_fatal(server, threads, tmp_path):
    client = get_client("openai", base_url=server.base_url, model="m", retries=3, cache_dir=tmp_path / "c")
    huge = "def f():\n    return 1\n" * 2000  # far beyond n_ctx tokens
    with pytest.raises(PromptRejected, match="HTTP 400"):
        client.complete([huge])
    assert client.requests_sent == 1  # a refused request is not retried
    rejected = client.try_complete([huge])
    assert isinstance(rejected[0], PromptRejected)
    assert client.cached_count() == 0  # refusals are never cached

    # In a judge run the long thread is counted as request_rejected; the rest are scored.
    long_thread = make_doc("# long\n\n" + huge, "stackexchange", {"site": "x", "question_id": 0}, id="0000-long")
    settings = _settings(server.base_url, tmp_path / "cache", extra_body=SCORE_GRAMMAR, max_chars=10**6)
    docs = [long_thread] + threads[:5]
    labels, stats, _ = _judge(docs, settings, sample_size=len(docs))
    assert stats["rejected_by_reason"] == {"request_rejected": 1}
    assert stats["labelled"] == 5 and "0000-long" not in {d["id"] for d in labels}


def test_slow_server_times_out_and_retries_with_backoff(server, tmp_path):
    """A frozen server (SIGSTOP) accepts connections but never answers: the client times out and retries."""
    client = get_client("openai", base_url=server.base_url, model="m", timeout=0.4, retries=1, extra_body=SCORE_GRAMMAR)
    server.pause()
    try:
        with pytest.raises(LLMError, match=r"giving up after 2 attempts: Timeout"):
            client.complete(["frozen"])
        assert client.requests_sent == 2
        patient = get_client(
            "openai", base_url=server.base_url, model="m", timeout=0.4, retries=6, extra_body=SCORE_GRAMMAR
        )
        threading.Timer(0.6, server.resume).start()  # the server wakes up while the client is retrying
        reply = patient.complete(["slow then fine"])
    finally:
        server.resume()
    assert reply[0] in {"1", "2", "3", "4", "5"}
    assert patient.requests_sent >= 2  # at least one attempt timed out first


def _cached(cache_dir: Path) -> int:
    """How many answers the judge's on-disk cache holds (read as another process would)."""
    if not cache_dir.is_dir():
        return 0
    with Cache(str(cache_dir), eviction_policy="none") as cache:  # the client's own setting, not reset here
        return len(cache)


def _wait_for_cache(cache_dir: Path, at_least: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = _cached(cache_dir)
        if count >= at_least:
            return count
        time.sleep(0.005)
    raise AssertionError(f"fewer than {at_least} answers cached in {timeout}s")


# Long replies (end-of-sequence banned, 160 tokens) make each request take a while, so a kill lands mid-run.
SLOW_REPLIES = {"logit_bias": {str(EOS_ID): -100}}


def test_server_dies_mid_run_then_the_rerun_resumes_from_the_cache(gguf, threads, tmp_path):
    first = LlamaServer(gguf, tmp_path / "server1.log").start()
    cache = tmp_path / "cache"
    settings = _settings(first.base_url, cache, extra_body=SLOW_REPLIES, max_tokens=160, concurrency=2, max_retries=1)
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = _judge(threads, settings, sample_size=16)
        except LLMError as err:
            outcome["error"] = err

    worker = threading.Thread(target=run)
    try:
        worker.start()
        _wait_for_cache(cache, 3)
        first.kill()
        worker.join(timeout=60)
    finally:
        first.stop()
    assert "error" in outcome, "the run finished before the server was killed"
    message = str(outcome["error"])
    assert "stopped after" in message and "of 16 sampled threads" in message and "re-run" in message
    cached = _cached(cache)
    assert 3 <= cached < 16

    second = LlamaServer(gguf, tmp_path / "server2.log").start()  # a new server, on another port
    try:
        restarted = settings.model_copy(update={"base_url": second.base_url})
        _labels, stats, _ = _judge(threads, restarted, sample_size=16)
    finally:
        second.stop()
    assert stats["requests"]["from_cache"] == cached
    assert stats["requests"]["answered_by_server"] == 16 - cached
    assert stats["labelled"] + stats["rejected"] == 16


KILLED_CLIENT = """
import sys
from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.settings import JudgeSettings, StackExchangeSettings
from abacus_repro.text.judge import client_from_settings, judge_documents
settings = JudgeSettings.model_validate_json(sys.argv[1])
docs, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[sys.argv[2]]))
judge_documents(docs, client_from_settings(settings), settings, seed=3)
"""


def test_judge_killed_mid_run_resumes_where_it_stopped(server, threads, tmp_path):
    cache = tmp_path / "cache"
    settings = _settings(server.base_url, cache, extra_body=SLOW_REPLIES, max_tokens=160, concurrency=2)
    child_settings = settings.model_copy(update={"sample_size": 16, "batch_size": 8}).model_dump_json()
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, child_settings, SAMPLE])
    try:
        _wait_for_cache(cache, 3)
    finally:
        child.kill()  # SIGKILL: no clean-up of any kind
        child.wait()
    cached = _cached(cache)
    assert 3 <= cached < 16, "the judge finished before it was killed"

    _, stats, _ = _judge(threads, settings, sample_size=16)
    assert stats["requests"]["from_cache"] == cached
    assert stats["requests"]["answered_by_server"] == 16 - cached
    assert stats["labelled"] + stats["rejected"] == 16


def test_transformers_backend_batches_our_minicpm(tiny_model, threads):
    """The project's own MiniCPM directory through AutoModelForCausalLM (registered by abacus_repro.model)."""
    batched = get_client("transformers", model_dir=str(tiny_model), batch_size=4, max_new_tokens=6)
    prompts = ["Score this thread: 1-5", "def add(a, b):\n    return a + b", "如何读取文件？", "x"]
    replies = batched.complete(prompts)
    one_by_one = get_client("transformers", model_dir=str(tiny_model), batch_size=1, max_new_tokens=6)
    assert replies == one_by_one.complete(prompts)  # left padding does not change greedy output
    settings = JudgeSettings(backend="transformers", model=str(tiny_model), concurrency=4, sample_size=6, max_chars=600)
    labels, stats = judge_documents(threads, client_from_settings(settings), settings, seed=1)
    assert stats["judge"] == f"transformers:{tiny_model.name}"
    assert stats["labelled"] + stats["rejected"] == 6 == stats["sampled"]
    assert len(labels) == stats["labelled"]
