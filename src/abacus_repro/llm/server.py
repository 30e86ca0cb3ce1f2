"""An OpenAI-compatible LLM server that lives exactly as long as the job that needs it.

The judge (rule text_judge) and the Semi-Instruct rewriter (rule sft_semi_instruct) talk to an
OpenAI-compatible server. When their config names no external server (``base_url: null``) and the ``llm_server``
section names an engine, the consumer job starts one itself, on its own node, for its own lifetime:

    with consumer_endpoint(judge_settings, server_settings, "text.judge", log_path) as served:
        ...   # served["base_url"] and served["model"] now point at the running server

This is what a Snakemake service job would give (a server beside its consumers), without group jobs, which
the SLURM executor runs poorly: on SLURM the server runs on the consumer's GPU node for exactly the
consumer's lifetime and nothing outlives the job.

Engines: ``llama_cpp`` (``python -m llama_cpp.server``, a GGUF file, CPU) and ``vllm``
(``python -m vllm.entrypoints.openai.api_server``, a Hugging Face directory, GPUs). The server's output goes
to its own log file; a server that dies or never answers is an :class:`LLMServerError` carrying its log tail.
It is stopped with SIGTERM, then SIGKILL, on success, on error and on SIGTERM to the job; it also dies with
the job's process (Linux parent-death signal), so even a SIGKILLed consumer leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import InputError
from ..settings import LLMServerSettings
from .client import LLMError

log = logging.getLogger(__name__)

ENGINES = ("none", "llama_cpp", "vllm")
ENGINE_MODULES = {"llama_cpp": "llama_cpp.server", "vllm": "vllm.entrypoints.openai.api_server"}
LOG_TAIL_CHARS = 3000
POLL_INTERVAL_S = 0.25
PORT_ATTEMPTS = 3  # a free port can be taken by another process between our probe and the server's bind
_PORT_IN_USE = ("address already in use", "errno 98")


class LLMServerError(LLMError):
    """The server could not be started, died, or never answered; the message carries its log tail."""


@dataclass(frozen=True)
class Endpoint:
    """A running server: where to send requests, and the model name it answers to."""

    base_url: str
    model: str


def served_name(settings: LLMServerSettings, consumer_model: str | None = None) -> str:
    """The name clients send as ``model``: the consumer's ``model`` when set, else the model file's stem."""
    if consumer_model:
        return consumer_model
    path = Path(str(settings.model).rstrip("/"))
    return path.stem if path.suffix == ".gguf" else path.name


def server_command(
    settings: LLMServerSettings, model: str, name: str, port: int, threads: int | None = None
) -> list[str]:
    """The server's command line (no shell). ``threads``: llama_cpp's CPU threads (the job's)."""
    python = settings.python or sys.executable
    if settings.engine == "llama_cpp":
        command = [python, "-m", ENGINE_MODULES["llama_cpp"], "--model", model, "--model_alias", name]
        command += ["--host", settings.host, "--port", str(port), "--n_ctx", str(settings.n_ctx)]
        if threads:
            command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    elif settings.engine == "vllm":
        command = [python, "-m", ENGINE_MODULES["vllm"], "--model", model, "--served-model-name", name]
        command += ["--host", settings.host, "--port", str(port), "--max-model-len", str(settings.n_ctx)]
    else:
        raise InputError(None, f"llm_server.engine {settings.engine!r} starts no server")
    return command + list(settings.extra_args)


def free_port(host: str) -> int:
    """A port the OS reports free on ``host`` now (the caller retries if it is taken before the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def log_tail(path: str | Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no server log)"


def tensor_parallel_size(extra_args: Sequence[str]) -> int:
    """vLLM's ``--tensor-parallel-size`` (or ``-tp``) in ``extra_args``; 1 when absent."""
    args = list(extra_args)
    for index, arg in enumerate(args):
        if arg.startswith("--tensor-parallel-size="):
            return int(arg.split("=", 1)[1])
        if arg in ("--tensor-parallel-size", "-tp") and index + 1 < len(args):
            return int(args[index + 1])
    return 1


def check_gpus(settings: LLMServerSettings) -> None:
    """vLLM with tensor parallelism needs that many GPUs in the job: say so before a minutes-long load fails."""
    if settings.engine != "vllm":
        return
    wanted = tensor_parallel_size(settings.extra_args)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or wanted <= 1:
        return  # no restriction known here; vLLM reports its own errors
    have = len([d for d in visible.split(",") if d.strip()])
    if have < wanted:
        raise InputError(
            None,
            f"llm_server.extra_args asks vLLM for --tensor-parallel-size {wanted} but this job sees {have} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={visible}); give the consumer rule {wanted} GPUs (profile set-resources gpu)",
        )


PR_SET_PDEATHSIG = 1


def _parent_death_signal():
    """A function for the child (between fork and exec) that asks the kernel to SIGTERM the server when the job's
    process dies, even by SIGKILL; None off Linux (the context manager's clean-up is all there is there).
    libc is loaded here, in the parent: the child only makes one system call, safe even in a threaded parent."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _Server:
    """One server process: start on a free port, wait until it answers as ``name``, stop its process group."""

    def __init__(self, settings: LLMServerSettings, model: str, name: str, log_path: Path, threads: int | None):
        self.settings, self.model, self.name = settings, model, name
        self.log_path, self.threads = log_path, threads
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> Endpoint:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port(self.settings.host)
            command = server_command(self.settings, self.model, self.name, self.port, self.threads)
            with self.log_path.open("ab") as out:
                out.write(f"$ {shlex.join(command)}\n".encode())
            log.info("starting %s server on port %d (log: %s)", self.settings.engine, self.port, self.log_path)
            with self.log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
                # Own session (process group): stopping it stops vLLM's worker processes too.
                # preexec_fn makes one async-signal-safe system call (see _parent_death_signal).
                self.process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                    preexec_fn=_parent_death_signal(),  # noqa: PLW1509
                    env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
                )  # fmt: skip
            started = time.monotonic()
            if self._wait_until_answering():
                log.info("%s answers at %s after %.1f s", self.name, self.base_url, time.monotonic() - started)
                return Endpoint(self.base_url, self.name)
            tail = log_tail(self.log_path)
            if any(marker in tail.lower() for marker in _PORT_IN_USE) and attempt < PORT_ATTEMPTS:
                log.warning("port %d was taken before the server bound it; trying another", self.port)
                continue
            self.stop()
            raise LLMServerError(self._failure(tail))
        raise AssertionError("unreachable")

    def _wait_until_answering(self) -> bool:
        """True once GET /v1/models lists our model; False when the process exits first; raises on timeout."""
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise LLMServerError(
            f"llm_server ({self.settings.engine}) did not answer on {self.base_url} within "
            f"{self.settings.startup_timeout_s:g} s (llm_server.startup_timeout_s); last lines of its log "
            f"{self.log_path}:\n{log_tail(self.log_path)}"
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                listed = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError):
            return False
        # Another process on this port (taken between probe and bind) lists other models: not ours.
        return self.name in {entry.get("id") for entry in listed.get("data", []) if isinstance(entry, dict)}

    def _failure(self, tail: str) -> str:
        code = self.process.returncode if self.process is not None else None
        return (
            f"llm_server ({self.settings.engine}) exited with code {code} before answering on {self.base_url}; "
            f"last lines of its log {self.log_path}:\n{tail}"
        )

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``stop_timeout_s``; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.settings.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop within %g s of SIGTERM; killing it", self.settings.stop_timeout_s)
            self._signal(signal.SIGKILL)
            self.process.wait()
        # Workers that outlived the leader (vLLM's tensor-parallel processes) share its process group.
        self._signal(signal.SIGKILL, quiet=True)
        log.info("%s server stopped (exit code %s)", self.settings.engine, self.process.returncode)

    def _signal(self, signum: int, quiet: bool = False) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            if not quiet:
                self.process.send_signal(signum)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (Snakemake or SLURM ending the job) raises SystemExit, so clean-up code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def served(
    settings: LLMServerSettings,
    log_path: str | Path,
    model: str | None = None,
    name: str | None = None,
    threads: int | None = None,
) -> Iterator[Endpoint]:
    """Start the configured server, wait until it answers, yield its endpoint, stop it whatever happens.

    ``model``: the file or directory to serve (default ``settings.model``; the rule passes its input, e.g. the
    GGUF exported by rule llm_server_gguf); ``name``: the model name it answers to (default: see served_name).
    """
    if settings.engine == "none":
        raise InputError(None, "llm_server.engine is none: there is no server to start")
    check_gpus(settings)
    model = str(model or settings.model)
    if settings.engine == "llama_cpp" and not Path(model).is_file():
        raise InputError(model, "llm_server.model for llama_cpp must be a GGUF file")
    server = _Server(settings, model, name or served_name(settings), Path(log_path), threads)
    with _stop_on_sigterm():
        try:
            yield server.start()
        finally:
            server.stop()


def needs_server(consumer: Mapping | BaseModel) -> bool:
    """Whether a consumer section (text.judge, sft.rewriter) wants a server and names none (base_url null)."""
    consumer = _as_dict(consumer)
    return consumer.get("backend") == "openai" and not consumer.get("base_url")


def _as_dict(section: Mapping | BaseModel | None) -> dict:
    return section.model_dump() if isinstance(section, BaseModel) else dict(section or {})


def server_settings(section: Mapping | LLMServerSettings | None) -> LLMServerSettings:
    """The ``llm_server`` settings from a config section (None: the defaults, engine none)."""
    if isinstance(section, LLMServerSettings):
        return section
    try:
        return LLMServerSettings.model_validate(dict(section or {}))
    except ValidationError as err:
        raise InputError("config", f"llm_server: {err}") from err


@contextlib.contextmanager
def consumer_endpoint(
    consumer: Mapping | BaseModel,
    server_section: Mapping | LLMServerSettings | None,
    where: str,
    log_path: str | Path,
    model: str | None = None,
    threads: int | None = None,
) -> Iterator[dict]:
    """The consumer's settings (as a dict) for the duration of the block, ``base_url`` and ``model`` pointing at
    a server started here when it needs one (backend openai, base_url null), with ``server_engine`` naming its
    engine; otherwise unchanged and nothing starts. ``consumer``: its config section or settings object.

    ``where`` names the consumer's config section in messages. The server log file is always written, so the
    rule's declared log says what happened.
    """
    consumer = _as_dict(consumer)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if not needs_server(consumer):
        reason = f"{where}.base_url is {consumer['base_url']}" if consumer.get("base_url") else (
            f"{where}.backend is {consumer.get('backend')}")  # fmt: skip
        log_path.write_text(f"no server started: {reason}\n", encoding="utf-8")
        yield consumer
        return
    settings = server_settings(server_section)
    if settings.engine == "none":
        raise InputError(
            None,
            f"{where}.backend is openai but neither {where}.base_url (an external server) nor llm_server.engine "
            "(a server the job starts) is set",
        )
    with served(settings, log_path, model, served_name(settings, consumer.get("model")), threads) as endpoint:
        yield {**consumer, "base_url": endpoint.base_url, "model": endpoint.model, "server_engine": settings.engine}
