"""The LLM server inside its consumer job (abacus_repro.llm.server), against the real llama-cpp-python server
serving a tiny random MiniCPM exported to GGUF here; vLLM (not installable here) as its command line.

Covered: start, answer, stop (process gone, port free) on success, on error, on SIGTERM and when the consumer is
SIGKILLed; a server that dies or never answers is a clear error with its log; the judge through the served model
with the JSON-schema constraint (every reply parses); the Semi-Instruct rewriter on the same model's garbage
(every rewrite rejected and counted) and the SFT set then built from the NL pairs alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from abacus_repro.errors import InputError
from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.io import doc_meta
from abacus_repro.llm import (
    LLMServerError,
    consumer_endpoint,
    get_client,
    served,
    server_command,
    server_settings,
)
from abacus_repro.llm.server import served_name, tensor_parallel_size
from abacus_repro.settings import (
    ClassifierSettings,
    JudgeSettings,
    LLMServerSettings,
    SftSettings,
    StackExchangeSettings,
)
from abacus_repro.sft import SemiInstructJob, build_dataset, make_rewriter, semi_instruct
from abacus_repro.sft.collect import collect_natural
from abacus_repro.text.classifier import train_classifier
from abacus_repro.text.judge import client_from_settings, judge_documents, reply_format_for

from ..conftest import REPO_ROOT
from .model_fixtures import make_model, make_tokenizer
from .sft_fixtures import write_code_shard

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")

SCHEMA = REPO_ROOT / "workflow/schemas/config.schema.yaml"
SAMPLE = "data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml"


def _schema_defaults(*path: str) -> dict:
    """What the schema fills in for a config section left out (the workflow's defaults), e.g. ("text", "judge")."""
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    parent = config
    for key in path[:-1]:
        parent = parent.setdefault(key, {})
    parent.pop(path[-1], None)
    validate(config, str(SCHEMA))
    for key in path:
        config = config[key]
    return config


def _resolved(path: str) -> dict:
    config = yaml.safe_load((REPO_ROOT / path).read_text())
    validate(config, str(SCHEMA))
    return config


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    """A tiny random MiniCPM with the project's tokenizer, exported to GGUF F16 by the package's exporter."""
    from abacus_repro.export import write_gguf

    root = tmp_path_factory.mktemp("served-model")
    tokenizer = make_tokenizer(root / "tokenizer", vocab_size=512, max_chars=150_000)
    small = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 2}
    model = make_model(root / "model", tokenizer, num_key_value_heads=2, dim_model_base=32, **small)
    return write_gguf(model, root / "tiny-F16.gguf", "F16")


@pytest.fixture(scope="module")
def server_section(gguf) -> dict:
    return {"engine": "llama_cpp", "model": str(gguf), "n_ctx": 2048, "startup_timeout_s": 60, "stop_timeout_s": 10}


@pytest.fixture(scope="module")
def threads():
    docs, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    return docs


def _port_is_free(port: int) -> bool:
    """Nobody listens on the port: a new server could bind it. SO_REUSEADDR, as servers set it, because the
    connections the stopped server closed linger in TIME_WAIT for a minute without holding the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """The process has exited (and been reaped, or is a zombie of a dead parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _models(base_url: str) -> list[str]:
    with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
        return [entry["id"] for entry in json.loads(response.read())["data"]]


# ------------------------------------------------------------------------------------------ configuration


def test_settings_defaults_are_the_schema_defaults():
    defaults = _schema_defaults("llm_server")
    settings = LLMServerSettings()
    assert {key: getattr(settings, key) for key in defaults} == defaults
    assert server_settings(defaults) == settings == server_settings(None)
    with pytest.raises(InputError, match="port"):
        server_settings({"engine": "vllm", "model": "m", "port": 8000})  # not a key of llm_server
    with pytest.raises(InputError, match="llm_server.engine llama_cpp needs llm_server.model"):
        server_settings({"engine": "llama_cpp"})
    # The classifier's fallback knobs: the settings' defaults are the schema's.
    classifier = _resolved("config/config.yaml")["text"]["classifier"]
    assert ClassifierSettings().min_per_class == classifier["min_per_class"]
    assert ClassifierSettings().on_uninformative == classifier["on_uninformative"]


def test_vllm_command_line_for_the_paper_config():
    """vLLM's flags as documented for `python -m vllm.entrypoints.openai.api_server` (--model, --served-model-name,
    --host, --port, --max-model-len, --tensor-parallel-size, --gpu-memory-utilization, --dtype)."""
    config = _resolved("config/abacus-2.7b.yaml")
    settings = server_settings(config["llm_server"])
    judge = config["text"]["judge"]
    assert judge["backend"] == "openai" and judge["base_url"] is None
    assert config["sft"]["rewriter"]["backend"] == "openai" and config["sft"]["rewriter"]["base_url"] is None
    name = served_name(settings, judge["model"])
    command = server_command(settings, settings.model, name, port=41234)
    assert command == [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/models/Llama-3.1-70B-Instruct", "--served-model-name", "Llama-3.1-70B-Instruct",
        "--host", "127.0.0.1", "--port", "41234", "--max-model-len", "8192",
        "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.90", "--dtype", "bfloat16",
    ]  # fmt: skip
    # The GPUs the paper config gives the consumer jobs are the tensor-parallel size.
    assert tensor_parallel_size(settings.extra_args) == 4
    for rule in ("text_judge", "sft_semi_instruct"):
        assert config["resources"][rule]["gpus"] == 4, rule
    # With the judge's constraint on, vLLM gets the OpenAI-standard json_schema response format.
    served_judge = JudgeSettings(**{**judge, "base_url": "http://127.0.0.1:41234/v1", "model": name})
    client = client_from_settings(served_judge, server_engine="vllm")
    assert client.extra_body["response_format"]["type"] == "json_schema"
    assert client.extra_body["response_format"]["json_schema"]["schema"]["required"] == ["score"]


def test_llama_cpp_command_line(gguf):
    settings = LLMServerSettings(engine="llama_cpp", model=str(gguf), n_ctx=1024, extra_args=["--verbose", "false"])
    assert server_command(settings, str(gguf), "tiny-F16", 5000, threads=2) == [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "tiny-F16",
        "--host", "127.0.0.1", "--port", "5000", "--n_ctx", "1024",
        "--n_threads", "2", "--n_threads_batch", "2", "--verbose", "false",
    ]  # fmt: skip
    assert served_name(settings) == "tiny-F16"


def test_vllm_tensor_parallel_larger_than_the_jobs_gpus_is_refused(monkeypatch, tmp_path):
    settings = LLMServerSettings(engine="vllm", model="/models/x", extra_args=["--tensor-parallel-size", "4"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    refused = pytest.raises(InputError, match=r"--tensor-parallel-size 4 but this job sees 1 GPU")
    with refused, served(settings, tmp_path / "server.log"):
        pytest.fail("no server may start")


def test_consumers_that_need_no_server_start_none(tmp_path, server_section):
    external = {"backend": "openai", "base_url": "http://judge:8000/v1", "model": "m"}
    with consumer_endpoint(external, server_section, "text.judge", tmp_path / "a.log") as settings:
        assert settings == external
    assert "no server started: text.judge.base_url is http://judge:8000/v1" in (tmp_path / "a.log").read_text()
    with consumer_endpoint({"backend": "metadata"}, server_section, "sft.rewriter", tmp_path / "b.log") as settings:
        assert settings == {"backend": "metadata"}
    nothing_to_talk_to = {"backend": "openai", "base_url": None}
    refused = pytest.raises(InputError, match="neither text.judge.base_url .* nor llm_server.engine")
    with refused, consumer_endpoint(nothing_to_talk_to, {"engine": "none"}, "text.judge", tmp_path / "c"):
        pytest.fail("no server may start")


# --------------------------------------------------------------------------------------- the real server


def test_served_starts_answers_and_stops(server_section, tmp_path):
    settings = server_settings(server_section)
    log_path = tmp_path / "logs" / "server.log"
    with served(settings, log_path, threads=1) as endpoint:
        port = int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])
        assert _models(endpoint.base_url) == ["tiny-F16"] and endpoint.model == "tiny-F16"
        reply = get_client("openai", base_url=endpoint.base_url, model=endpoint.model, max_tokens=4).complete(["hi"])
        assert isinstance(reply[0], str)
        assert not _port_is_free(port)
    assert _port_is_free(port)
    log_text = log_path.read_text()
    assert log_text.startswith("$ ") and "llama_cpp.server" in log_text and "/v1/chat/completions" in log_text


def test_server_is_stopped_when_the_consumer_fails(server_section, tmp_path):
    settings = server_settings(server_section)
    failing = pytest.raises(RuntimeError, match="consumer failed")
    with failing, served(settings, tmp_path / "server.log", threads=1) as endpoint:
        port = int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])
        raise RuntimeError("consumer failed")
    assert _port_is_free(port)


def test_dying_server_is_a_clear_error_with_its_log(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file\n" * 10)
    settings = LLMServerSettings(engine="llama_cpp", model=str(broken), startup_timeout_s=60)
    with pytest.raises(LLMServerError) as failure, served(settings, tmp_path / "server.log"):
        pytest.fail("a server on a broken file must not answer")
    message = str(failure.value)
    assert "exited with code" in message and str(tmp_path / "server.log") in message
    assert "llama_cpp.server" in message  # the log tail: its command line and its traceback


def test_server_that_never_answers_in_time_is_stopped(server_section, tmp_path):
    # 10 ms is less than the interpreter needs to import the server: a timeout, never an answer.
    settings = server_settings({**server_section, "startup_timeout_s": 0.01})
    too_slow = pytest.raises(LLMServerError, match=r"did not answer .* within 0.01 s \(llm_server.startup_timeout_s\)")
    with too_slow, served(settings, tmp_path / "server.log"):
        pytest.fail("no server answers in 10 ms")
    first_line = (tmp_path / "server.log").read_text().splitlines()[0]
    port = int(first_line.split("--port ")[1].split()[0])
    assert _port_is_free(port)


CONSUMER = """
import json, sys, time
from abacus_repro.llm import served, server_settings
settings = server_settings(json.loads(sys.argv[1]))
with served(settings, sys.argv[2], threads=1) as endpoint:
    print(endpoint.base_url, flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_server_dies_with_its_consumer_job(server_section, tmp_path, signum):
    """SIGTERM (Snakemake or SLURM ending the job) runs the clean-up; SIGKILL leaves none to run, and the kernel's
    parent-death signal stops the server anyway."""
    log_path = tmp_path / "server.log"
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, json.dumps(server_section), str(log_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = consumer.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        server_pid = int(subprocess.check_output(["pgrep", "-f", "--", f"--port {port}"], text=True).split()[0])
        os.kill(consumer.pid, signum)
        consumer.wait(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode in (128 + signum, -signum)
    assert _gone(server_pid), "the server outlived its consumer"
    deadline = time.monotonic() + 10
    while not _port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _port_is_free(port)


# --------------------------------------------------------------------------------- consumers, end to end


def test_judge_through_the_served_model_with_the_json_schema_constraint(server_section, threads, tmp_path):
    judge = JudgeSettings(
        **{**_schema_defaults("text", "judge"), "backend": "openai", "cache_dir": str(tmp_path / "cache")}
    )
    with consumer_endpoint(judge, server_section, "text.judge", tmp_path / "server.log", threads=1) as endpoint:
        assert endpoint["base_url"].startswith("http://127.0.0.1:") and endpoint["model"] == "tiny-F16"
        served_judge = judge.model_copy(
            update={"base_url": endpoint["base_url"], "model": endpoint["model"], "sample_size": 24, "max_chars": 1200}
        )
        engine = endpoint["server_engine"]
        assert reply_format_for(served_judge, engine) == "json"
        client = client_from_settings(served_judge, engine)
        assert client.extra_body["response_format"] == {
            "type": "json_object",  # llama-cpp-python's form of a JSON-schema constraint
            "schema": {
                "type": "object",
                "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
                "required": ["score"],
                "additionalProperties": False,
            },
        }
        labels, stats = judge_documents(threads, client, served_judge, seed=5, reply_format="json")
    # The untrained model's replies carry no signal, but every one of them parses.
    assert stats["sampled"] == 24 == stats["labelled"] and stats["rejected"] == 0
    assert stats["constraint"] == "json_object" and stats["reply_format"] == "json"
    assert sum(stats["score_histogram"].values()) == 24
    assert {doc_meta(d)["judge"] for d in labels} == {"openai:tiny-F16"}
    # Such labels teach nothing: the classifier keeps everything and says so (no encoder is even loaded).
    classifier, metrics = train_classifier(labels, ClassifierSettings(), good_score=3, seed=5)
    assert classifier["mode"] == "keep_all" and metrics["labels_informative"] is False
    assert sum(metrics["class_counts"].values()) == 24


def test_garbage_rewrites_are_rejected_and_counted_and_sft_is_built_from_nl(server_section, threads, tmp_path):
    natural, _ = collect_natural([write_code_shard(tmp_path / "kept.parquet")], None, 0)
    rewriter_section = {**_schema_defaults("sft", "rewriter"), "backend": "openai", "max_tokens": 48}
    rewriter_section["cache_dir"] = str(tmp_path / "cache")
    sft = SftSettings(max_tests_per_function=3, sandbox={"timeout_s": 5, "memory_mb": 512})
    with consumer_endpoint(rewriter_section, server_section, "sft.rewriter", tmp_path / "server.log", threads=1) as s:
        kept, dropped, stats = semi_instruct(natural, SemiInstructJob.of(sft, 1), rewriter=make_rewriter(s), workers=1)
    assert stats["read"] == len(natural) >= 3 and kept == []
    assert stats["dropped"] == {"rewrite_failed": len(natural)}
    assert sum(stats["rewrite_failed_by_cause"].values()) == len(natural)
    assert stats["rewriter"] == "llm:openai:tiny-F16"
    assert all(d["reason"] == "rewrite_failed" and doc_meta(d)["rewrite_cause"] for d in dropped)

    dataset, dataset_stats = build_dataset(kept, threads, sft, seed=1)
    assert dataset_stats["code"] == 0 and dataset_stats["nl"] > 0 and len(dataset) == dataset_stats["rows"] > 0
    assert {doc_meta(d)["kind"] for d in dataset} == {"nl"}
    assert dataset_stats["read"] == dataset_stats["kept"] + sum(dataset_stats["dropped"].values())
