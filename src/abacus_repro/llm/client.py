"""One interface for everything that needs an LLM: ``complete(prompts) -> completions``.

Backends (``get_client(backend, **settings)``):

- ``metadata``: no model at all. Each caller hands it a deterministic ``responder(prompt) -> str`` for its own
  task (the judge scores from the community signals written into its prompt). Its ``name`` is
  ``metadata-fallback`` and outputs carry that name, so nobody mistakes it for a model's judgement.
- ``openai``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, a hosted API)
  through the OpenAI SDK: ``concurrency`` requests in flight (each distinct prompt asked once), the SDK's
  per-request timeout and its retries with back-off on timeouts, refused connections, 408/409/429/5xx (the
  server's ``Retry-After`` honoured), and an on-disk cache (diskcache) keyed by the hash of the whole request
  (model, messages, generation settings, ``extra_body``), written answer by answer, so a re-run costs nothing
  and a killed run resumes. A prompt the server refuses (400/413/422) is a :class:`PromptRejected`:
  ``try_complete`` returns it in the prompt's place so one over-long thread does not end a run of thousands;
  401/403/404 stop at once.
- ``transformers``: a local causal LM directory (our MiniCPM included), batched greedy generation with left
  padding (``local_files_only``: nothing is downloaded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import openai
from diskcache import Cache

from ..errors import InputError

log = logging.getLogger(__name__)

BACKENDS = ("metadata", "openai", "transformers")
METADATA_NAME = "metadata-fallback"


class LLMError(RuntimeError):
    """The LLM backend failed (server unreachable after retries, bad response)."""


class PromptRejected(LLMError):
    """The server refused this one prompt (HTTP 400/413/422: too long for its context, invalid content).

    Not a reason to stop a run of thousands: :meth:`LLMClient.try_complete` returns it in the prompt's place.
    """


class LLMClient(ABC):
    """Turns prompts into completions, in order; ``name`` says which model (or fallback) answered."""

    name: str = "llm"

    @abstractmethod
    def complete(self, prompts: list[str]) -> list[str]:
        """One completion per prompt, same order."""

    def try_complete(self, prompts: list[str]) -> list[str | PromptRejected]:
        """Like :meth:`complete`, but a prompt the backend refuses comes back as a PromptRejected in its place."""
        return list(self.complete(prompts))


class MetadataClient(LLMClient):
    """Model-free and deterministic: a task-specific ``responder`` answers each prompt."""

    name = METADATA_NAME

    def __init__(self, responder: Callable[[str], str] | None = None):
        self.responder = responder

    def complete(self, prompts: list[str]) -> list[str]:
        if self.responder is None:
            raise LLMError("the metadata backend needs a task-specific responder (get_client(..., responder=fn))")
        return [self.responder(prompt) for prompt in prompts]


class OpenAIClient(LLMClient):
    """Chat completions through the OpenAI SDK (``POST {base_url}/chat/completions``), cached on disk.

    The SDK sends each request: ``timeout`` seconds per attempt, up to ``retries`` more attempts on timeouts,
    refused connections, 408/409/429/5xx, waiting 0.5 s·2^k (at most 8 s, minus up to 25 % jitter) or what
    the server's ``Retry-After`` asks for (up to two minutes; a longer wait is not retried). Resumable: each
    answer goes to a :mod:`diskcache` store (SQLite: an entry is written whole or not at all) under a hash of
    the request as soon as it arrives, so a run that is killed or whose server dies keeps everything answered
    so far, and the next run asks only the rest. Failures are never cached.
    """

    # Statuses that reject one prompt, not the whole run.
    REJECT_STATUSES = frozenset({400, 413, 422})
    # Request fields the client sets itself; extra_body cannot override them (they are part of the cache key).
    OWN_FIELDS = ("model", "messages", "max_tokens", "temperature")

    def __init__(
        self,
        base_url: str,
        model: str,
        timeout: float | None = None,
        retries: int | None = None,
        cache_dir: str | Path | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        concurrency: int = 4,
        api_key_env: str = "OPENAI_API_KEY",
        system_prompt: str | None = None,
        extra_body: dict | None = None,
    ):
        if not base_url or not model:
            raise InputError(None, "the openai backend needs base_url and model settings")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.concurrency = max(1, int(concurrency))
        self.system_prompt = system_prompt
        # Server-specific request fields, e.g. llama.cpp's {"grammar": "root ::= [1-5]"} or vLLM's
        # {"guided_choice": ["1", ..., "5"]}; part of the cache key, since they change the answers.
        self.extra_body = dict(extra_body or {})
        self.name = f"openai:{model}"
        self._lock = threading.Lock()
        self._attempts = threading.local()  # the SDK retries in the calling thread: attempts of this request
        self.requests_sent = 0  # HTTP attempts, for logs and tests
        self.cache_hits = 0
        self.answered = 0  # completions received from the server in this client's life
        # A local server needs no key; the SDK insists on one, and servers started without --api-key ignore it.
        api_key = (os.environ.get(api_key_env, "") if api_key_env else "") or "no-key"
        # timeout, retries: None leaves the SDK's own (10 minutes, 2 retries); callers pass their settings'.
        limits = {"timeout": timeout, "max_retries": retries}
        self._sdk = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [self._count_attempt]}),
            **{name: value for name, value in limits.items() if value is not None},
        )
        # eviction_policy none: an answer stays until someone deletes the directory (no size-based eviction).
        self._cache = Cache(str(self.cache_dir), eviction_policy="none") if self.cache_dir else None

    def _count_attempt(self, _request) -> None:
        with self._lock:
            self.requests_sent += 1
        self._attempts.count = getattr(self._attempts, "count", 0) + 1

    def _messages(self, prompt: str) -> list[dict]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + [{"role": "user", "content": prompt}]

    def _request(self, prompt: str) -> dict:
        return {
            **self.extra_body,
            "model": self.model,
            "messages": self._messages(prompt),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def cache_key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps(self._request(prompt), sort_keys=True).encode("utf-8")).hexdigest()

    def _cached(self, prompt: str) -> str | None:
        if self._cache is None:
            return None
        completion = self._cache.get(self.cache_key(prompt))
        return completion if isinstance(completion, str) else None

    def _store(self, prompt: str, completion: str) -> None:
        if self._cache is not None:
            self._cache.set(self.cache_key(prompt), completion)

    def cached_count(self) -> int:
        """How many answers the cache holds (for progress messages)."""
        return len(self._cache) if self._cache is not None else 0

    def _post(self, prompt: str) -> str:
        """One completion; the SDK retries. Its errors become PromptRejected (one prompt) or LLMError (the run)."""
        self._attempts.count = 0
        extra = {key: value for key, value in self.extra_body.items() if key not in self.OWN_FIELDS}
        try:
            response = self._sdk.chat.completions.create(
                model=self.model,
                messages=self._messages(prompt),
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                extra_body=extra or None,
            )
            content = response.choices[0].message.content
        except openai.APIStatusError as err:
            detail = f"HTTP {err.status_code}: {err.response.text[:300]}"
            if err.status_code in self.REJECT_STATUSES:
                raise PromptRejected(f"{self.base_url}: {detail}") from err
            raise LLMError(self._gave_up(detail)) from err
        except openai.APITimeoutError as err:
            raise LLMError(self._gave_up(f"Timeout: {err}")) from err
        except openai.APIConnectionError as err:
            raise LLMError(self._gave_up(f"ConnectionError: {err.__cause__ or err}")) from err
        except (openai.APIResponseValidationError, AttributeError, IndexError, TypeError) as err:
            raise LLMError(f"{self.base_url}: response is not an OpenAI chat completion ({err!r})") from err
        return content if isinstance(content, str) else ""

    def _gave_up(self, detail: str) -> str:
        attempts = getattr(self._attempts, "count", 0)
        if attempts > 1:
            return f"{self.base_url}: giving up after {attempts} attempts: {detail}"
        return f"{self.base_url}: {detail}"  # not retried: 401, 403, 404 (wrong key, URL or model)

    def _complete_one(self, prompt: str) -> str:
        cached = self._cached(prompt)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return cached
        completion = self._post(prompt)
        self._store(prompt, completion)
        with self._lock:
            self.answered += 1
        return completion

    def _run(self, prompts: list[str], tolerate_rejects: bool) -> list[str | PromptRejected]:
        """Each distinct prompt asked once, ``concurrency`` at a time; the first hard failure stops the rest."""
        unique = list(dict.fromkeys(prompts))
        answers: dict[str, str | PromptRejected] = {}

        def one(prompt: str) -> str | PromptRejected:
            try:
                return self._complete_one(prompt)
            except PromptRejected as err:
                if not tolerate_rejects:
                    raise
                return err

        if self.concurrency == 1 or len(unique) <= 1:
            for prompt in unique:
                answers[prompt] = one(prompt)
        else:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                futures = {pool.submit(one, prompt): prompt for prompt in unique}
                try:
                    for future in as_completed(futures):
                        answers[futures[future]] = future.result()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # in-flight ones finish (and are cached)
                    raise
        return [answers[prompt] for prompt in prompts]

    def complete(self, prompts: list[str]) -> list[str]:
        return self._run(prompts, tolerate_rejects=False)  # type: ignore[return-value]

    def try_complete(self, prompts: list[str]) -> list[str | PromptRejected]:
        return self._run(prompts, tolerate_rejects=True)


class TransformersClient(LLMClient):
    """A local causal LM; batched greedy decoding, the chat template when the tokenizer has one."""

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        use_chat_template: bool = True,
        device: str = "cpu",
    ):
        model_dir = Path(model_dir) if model_dir else None
        if model_dir is None or not (model_dir / "config.json").is_file():
            raise InputError(model_dir, "the transformers backend needs model_dir: a local model directory")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .. import model as _register_minicpm  # noqa: F401 - registers model_type "minicpm" with the Auto classes

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = int(max_new_tokens)
        self.use_chat_template = use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        self.name = f"transformers:{model_dir.name}"

    def _render(self, prompt: str) -> str:
        if self.use_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def complete(self, prompts: list[str]) -> list[str]:
        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = [self._render(p) for p in prompts[start : start + self.batch_size]]
            encoded = self.tokenizer(batch, return_tensors="pt", padding=True).to(self.device)
            with self.torch.no_grad():
                generated = self.model.generate(
                    **encoded,
                    do_sample=False,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            outputs.extend(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return outputs


def get_client(backend: str, **settings) -> LLMClient:
    """The client for ``backend`` (one of BACKENDS); ``settings`` are its constructor's keyword arguments."""
    if backend == "metadata":
        return MetadataClient(settings.get("responder"))
    settings.pop("responder", None)  # only the fallback uses one; a config may pass it to any backend
    try:
        if backend == "openai":
            return OpenAIClient(**settings)
        if backend == "transformers":
            return TransformersClient(**settings)
    except TypeError as err:
        raise InputError(None, f"bad settings for the {backend} LLM backend: {err}") from err
    raise InputError(None, f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
