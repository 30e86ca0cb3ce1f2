"""The LLM judge: a seeded sample of StackExchange threads scored 1-5 with a rubric, for the quality classifier.

The paper had Llama-3.1-70B-Chat score 20k random StackExchange samples and trained a quality model on the
scores. Here any backend of :mod:`abacus_repro.llm` can judge. The rubric lives in ``judge_rubric.txt``; it
shows the thread and its community signals (votes, acceptance, answer count, code, length). The model-free
``metadata`` backend scores from those signals alone, and its labels say so (``judge="metadata-fallback"``).

Only a reply that is exactly one integer from 1 to 5 (optionally written ``Score: 4`` or ``4/5``), or the JSON
object ``{"score": 4}``, counts; anything else is rejected and counted, never guessed.

Constrained replies (``text.judge.constrain``): through an OpenAI-compatible server the judge asks for a reply
that matches :data:`SCORE_SCHEMA` (one key, ``score``, an integer 1-5), so the server's constrained decoding
makes every reply parse. The request field depends on the server: the OpenAI-standard
``response_format: {"type": "json_schema", ...}`` (vLLM, OpenAI) or
llama-cpp-python's ``{"type": "json_object", "schema": ...}`` (its server answers ``json_schema`` with HTTP 500,
"Input should be 'text' or 'json_object'").
``auto`` picks llama-cpp-python's form when the workflow serves the model with ``llm_server.engine: llama_cpp``
and the standard one otherwise; a constraint of the user's own in ``extra_body`` (a llama.cpp ``grammar``,
vLLM ``guided_choice`` or ``structured_outputs``) wins, and the reply is then read as plain text.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InputError
from ..io import Funnel, doc_meta, make_doc, write_docs, write_json
from ..llm import LLMClient, LLMError, OpenAIClient, PromptRejected, consumer_endpoint, get_client
from ..rules import RulePaths
from ..settings import JudgeSettings, LLMServerSettings, Settings

log = logging.getLogger(__name__)

RUBRIC_PATH = Path(__file__).with_name("judge_rubric.txt")
_SCORE_REPLY = re.compile(r"^\s*(?:score\s*[:=]?\s*)?\**([1-5])\**\s*(?:/\s*5)?\s*\.?\s*$", re.IGNORECASE)
_SIGNAL = re.compile(r"(\w+)=([\w.-]+)")

# The reply a constrained judge must give: {"score": n}, n in 1..5. An enum rather than minimum/maximum:
# llama-cpp-python's schema-to-grammar converter ignores integer bounds; every converter supports enums.
SCORE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
    "required": ["score"],
    "additionalProperties": False,
}
REPLY_INSTRUCTIONS = {
    "plain": "Reply with the score only: a single integer from 1 to 5.",
    "json": 'Reply with JSON only, in the form {"score": N} where N is an integer from 1 to 5.',
}
# extra_body fields that already constrain the reply (llama.cpp, vLLM before and after v0.12, OpenAI).
_OWN_CONSTRAINTS = frozenset(
    {"grammar", "response_format", "guided_choice", "guided_json", "guided_regex", "guided_grammar",
     "structured_outputs"}
)  # fmt: skip


def load_rubric(path: str | Path = RUBRIC_PATH) -> str:
    return Path(path).read_text(encoding="utf-8")


def signals_of(doc: dict) -> dict[str, Any]:
    """The community signals the rubric shows and the metadata fallback scores from."""
    meta = doc_meta(doc)
    answer_scores = meta.get("answer_scores") or []
    return {
        "question_score": int(meta.get("score") or 0),
        "best_answer_score": max(answer_scores) if answer_scores else 0,
        "accepted_answer": "yes" if meta.get("accepted") else "no",
        "answers": int(meta.get("answer_count") or len(answer_scores)),
        "closed": "yes" if meta.get("closed") else "no",
        "has_code": "yes" if meta.get("has_code") or "```" in doc["text"] else "no",
        "length_chars": len(doc["text"]),
    }


def build_prompt(doc: dict, rubric: str, max_chars: int, reply_format: str = "plain") -> str:
    """The rubric filled in for one thread; long threads are cut at ``max_chars`` (marked as cut).

    ``reply_format``: ``plain`` (one integer) or ``json`` (``{"score": N}``, for a constrained judge).
    """
    meta = doc_meta(doc)
    text = doc["text"]
    if len(text) > max_chars:
        text = text[:max_chars] + "\n[... thread cut here ...]"
    signals = "; ".join(f"{key}={value}" for key, value in signals_of(doc).items())
    return rubric.format(
        site=meta.get("site", "StackExchange"),
        signals=signals,
        tags=", ".join(meta.get("tags") or []) or "(none)",
        document=text,
        reply_instruction=REPLY_INSTRUCTIONS[reply_format],
    )


def parse_score(reply: str | None) -> int | None:
    """The score in a judge's reply, or None when the reply is neither exactly one integer 1..5 nor a JSON
    object whose ``score`` is one (a constrained reply cut short by max_tokens is not JSON: None)."""
    if reply is None:
        return None
    text = reply.strip()
    if text.startswith("{"):
        return _json_score(text)
    match = _SCORE_REPLY.match(text)
    return int(match.group(1)) if match else None


def _json_score(text: str) -> int | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    score = value.get("score") if isinstance(value, dict) else None
    # bool is an int in Python; true is not a score.
    return score if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5 else None


def constraint_for(judge: JudgeSettings, server_engine: str | None = None) -> str:
    """``json_schema``, ``json_object`` or ``none``: how this judge's requests constrain the reply (module doc).

    ``server_engine``: the engine of the server the job started itself (abacus_repro.llm.consumer_endpoint),
    None for an external server or none at all.
    """
    if judge.backend != "openai":
        return "none"  # the metadata fallback and local transformers models reply in plain text
    if judge.constrain != "auto":
        return judge.constrain
    if _OWN_CONSTRAINTS & set(judge.extra_body or {}):
        return "none"
    return "json_object" if server_engine == "llama_cpp" else "json_schema"


def reply_format_for(judge: JudgeSettings, server_engine: str | None = None) -> str:
    """``json`` when the reply is constrained to SCORE_SCHEMA, else ``plain``: which instruction the prompt ends with."""
    return "plain" if constraint_for(judge, server_engine) == "none" else "json"


def response_format(constraint: str) -> dict | None:
    """The request's ``response_format`` for a constraint (None: no constraint)."""
    if constraint == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "judge_score", "schema": SCORE_SCHEMA, "strict": True}}
    if constraint == "json_object":
        return {"type": "json_object", "schema": SCORE_SCHEMA}
    return None


def score_from_signals(signals: dict[str, Any]) -> int:
    """The deterministic fallback's verdict: votes, acceptance, answers, code and length, on the 1-5 scale."""

    def votes(score: int) -> float:
        return 1.0 if score >= 10 else 0.5 if score >= 3 else 0.0 if score >= 1 else -0.5 if score == 0 else -1.0

    points = 1.0
    points += votes(int(signals["question_score"]))
    points += votes(int(signals["best_answer_score"]))
    points += 0.5 if signals["accepted_answer"] == "yes" else 0.0
    points += 0.5 if signals["has_code"] == "yes" else 0.0
    points += 0.25 if int(signals["answers"]) >= 3 else 0.0
    length = int(signals["length_chars"])
    points += -1.0 if length < 400 else -0.5 if length < 800 else 0.5 if length > 1500 else 0.0
    points -= 1.5 if signals["closed"] == "yes" else 0.0
    return min(5, max(1, math.floor(points + 0.5)))


def metadata_responder(prompt: str) -> str:
    """The metadata backend's answer to a judge prompt: read the SIGNALS line, score it."""
    line = next((ln for ln in prompt.splitlines() if ln.startswith("SIGNALS:")), None)
    if line is None:
        return "no signals in prompt"  # parse_score rejects it: counted, not guessed
    signals = dict(_SIGNAL.findall(line))
    return str(score_from_signals(signals))


def _picked_positions(n: int, sample_size: int, seed: int) -> list[int]:
    """Positions (in id order) of a seeded sample of ``min(sample_size, n)`` threads."""
    return sorted(random.Random(seed).sample(range(n), min(int(sample_size), n)))


def sample_for_judging(docs: list[dict], sample_size: int, seed: int) -> list[dict]:
    """A seeded sample of ``min(sample_size, len(docs))`` threads, in id order (independent of input order)."""
    ordered = sorted(docs, key=lambda d: d["id"])
    return [ordered[i] for i in _picked_positions(len(ordered), sample_size, seed)]


def read_judge_sample(path: str | Path, sample_size: int, seed: int) -> tuple[list[dict], int]:
    """The same sample as :func:`sample_for_judging`, read from a Parquet shard without loading all of it.

    Only the ``id`` column is read in full (Stack Overflow: ~24M short strings); then just the sampled rows.
    Returns (sample in id order, number of threads available).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    except (OSError, ValueError, KeyError) as err:
        raise InputError(path, f"not a readable Parquet document shard with an id column ({err})") from err
    ordered = sorted(ids)
    if len(set(ordered)) != len(ordered):
        raise InputError(path, "document ids are not unique; the judge's sample would be ambiguous")
    wanted = [ordered[i] for i in _picked_positions(len(ordered), sample_size, seed)]
    table = pq.read_table(path, filters=pc.field("id").isin(wanted))
    sample = sorted(table.to_pylist(), key=lambda d: d["id"])
    return sample, len(ordered)


def judge_documents(
    docs: list[dict],
    client: LLMClient,
    judge: JudgeSettings,
    seed: int,
    reply_format: str = "plain",
    rubric: str | None = None,
):
    """Score a seeded sample of ``judge.sample_size`` threads; returns (labelled documents, stats). Labels carry
    judge_score and the judge name."""
    sample = sample_for_judging(docs, judge.sample_size, seed)
    return judge_sample(sample, client, len(docs), judge, reply_format, rubric)


def judge_sample(
    sample: list[dict],
    client: LLMClient,
    available: int,
    judge: JudgeSettings,
    reply_format: str = "plain",
    rubric: str | None = None,
):
    """Score threads already sampled (``available``: how many there were to sample from).

    ``judge`` gives the sample size (for the stats), ``good_score``, ``max_chars`` and ``batch_size``.
    ``reply_format`` (plain or json) only chooses the prompt's last instruction; every reply is parsed the same
    way (parse_score reads both).
    """
    good_score, max_chars, batch_size = judge.good_score, judge.max_chars, judge.batch_size
    rubric = rubric if rubric is not None else load_rubric()
    funnel = Funnel("text_judge")
    labels: list[dict] = []
    histogram: Counter[int] = Counter()
    rejected_examples: list[dict] = []
    progress = tqdm(total=len(sample), desc=f"judge ({client.name})", unit="thread", mininterval=5)
    for start in range(0, len(sample), batch_size):
        batch = sample[start : start + batch_size]
        try:
            replies = client.try_complete([build_prompt(doc, rubric, max_chars, reply_format) for doc in batch])
        except LLMError as err:
            raise LLMError(_stopped_message(client, start, len(sample), err)) from err
        for doc, reply in zip(batch, replies, strict=True):
            if isinstance(reply, PromptRejected):  # e.g. longer than the server's context: count, go on
                funnel.drop("request_rejected")
                if len(rejected_examples) < 5:
                    rejected_examples.append({"id": doc["id"], "error": str(reply)[:200]})
                continue
            score = parse_score(reply)
            if score is None:
                funnel.drop("unparseable_score")
                if len(rejected_examples) < 5:
                    rejected_examples.append({"id": doc["id"], "reply": (reply or "")[:200]})
                continue
            funnel.keep()
            histogram[score] += 1
            meta = doc_meta(doc)
            meta.update(judge=client.name, judge_score=score)
            labels.append(make_doc(doc["text"], doc["source"], meta, id=doc["id"]))
        progress.update(len(batch))
    progress.close()
    if sample and funnel.dropped.get("request_rejected", 0) == len(sample):
        raise LLMError(
            f"judge {client.name}: the server refused every one of {len(sample)} prompts, e.g. "
            f"{rejected_examples[0]['error']}. A prompt longer than the server's context: lower text.judge.max_chars "
            "or raise llm_server.n_ctx"
        )
    good = sum(n for score, n in histogram.items() if score >= good_score)
    funnel.extra.update(
        judge=client.name,
        reply_format=reply_format,
        available=available,
        sample_size=judge.sample_size,
        sampled=len(sample),
        labelled=len(labels),
        rejected=funnel.read - funnel.kept,
        rejected_by_reason=dict(sorted(funnel.dropped.items())),
        rejected_examples=rejected_examples,
        score_histogram={str(s): histogram.get(s, 0) for s in range(1, 6)},
        good_score=good_score,
        good=good,
        bad=len(labels) - good,
        good_share=round(good / len(labels), 4) if labels else None,
    )
    if isinstance(client, OpenAIClient):
        funnel.extra.update(_request_stats(client))
    log.info("judge %s: %s", client.name, json.dumps(funnel.extra["score_histogram"]))
    return labels, funnel.to_dict()


def _request_stats(client: OpenAIClient) -> dict:
    """How the server's replies were constrained, and how many came from it, from the cache, in how many tries."""
    constraint = (client.extra_body.get("response_format") or {}).get("type") or (
        ", ".join(sorted(_OWN_CONSTRAINTS & set(client.extra_body))) or "none")  # fmt: skip
    requests = {
        "answered_by_server": client.answered,
        "from_cache": client.cache_hits,
        "http_attempts": client.requests_sent,
    }
    return {"constraint": constraint, "requests": requests}


def _stopped_message(client: LLMClient, done: int, total: int, err: Exception) -> str:
    """What a person needs when the judge's server fails: how far it got, and that a re-run resumes."""
    message = f"judge {client.name} stopped after {done} of {total} sampled threads: {err}"
    if "'json_object'" in str(err):  # llama-cpp-python's server refusing the standard json_schema form
        message += ". The server takes only llama-cpp-python's response format: set text.judge.constrain: json_object"
    if isinstance(client, OpenAIClient) and client.cache_dir is not None:
        message += (
            f". {client.cached_count()} answers are cached in {client.cache_dir}; fix the server and re-run: "
            "answered prompts are not asked again"
        )
    return message


def client_from_settings(judge: JudgeSettings, server_engine: str | None = None) -> LLMClient:
    """The judge's LLM client from the ``text.judge`` settings.

    ``backend: metadata`` needs nothing. ``backend: openai`` uses ``base_url``, ``model``, ``concurrency``,
    ``timeout_s``, ``max_retries``, ``max_tokens``, ``extra_body`` (server-specific request fields, e.g. a
    llama.cpp ``grammar`` or vLLM ``guided_choice`` that limits replies to 1-5), ``constrain`` (the JSON-schema
    reply constraint, see the module doc; ``server_engine`` as for :func:`constraint_for`) and ``cache_dir`` (a
    re-run costs no requests). ``backend: transformers`` reads ``model`` as a local model directory and batches
    ``concurrency`` prompts per forward pass.
    """
    if judge.backend == "metadata":
        return get_client("metadata", responder=metadata_responder)
    if judge.backend == "openai":
        if not judge.base_url or not judge.model:
            raise InputError(None, "text.judge.base_url and text.judge.model must be set for the openai backend")
        extra_body = dict(judge.extra_body or {})
        constraint = response_format(constraint_for(judge, server_engine))
        if constraint is not None:
            extra_body["response_format"] = constraint
        return get_client(
            "openai",
            base_url=judge.base_url,
            model=judge.model,
            timeout=judge.timeout_s,
            retries=judge.max_retries,
            concurrency=judge.concurrency,
            cache_dir=judge.cache_dir,
            max_tokens=judge.max_tokens,
            extra_body=extra_body or None,
        )
    if not judge.model:
        raise InputError(None, "text.judge.model must name a local model directory for the transformers backend")
    return get_client("transformers", model_dir=judge.model, max_new_tokens=8, batch_size=judge.concurrency)


class JudgeJob(Settings):
    """Rule text_judge's settings: the seed, ``text.judge``, and ``llm_server`` when the job serves the model
    (None otherwise, so editing it re-runs no judge that does not use it)."""

    seed: int
    judge: JudgeSettings
    llm_server: LLMServerSettings | None = None


def judge_rule(settings: JudgeJob, paths: RulePaths) -> dict:
    """Rule text_judge: the seeded sample of qa.parquet judged; labels.parquet and stats.json.

    Only the ids of qa.parquet are read in full, then the sampled threads. With ``backend: openai`` and no
    ``base_url`` the job serves the judge model itself for its lifetime (its output in the log named server).
    """
    judge = settings.judge
    sample, available = read_judge_sample(paths.input["qa"], judge.sample_size, settings.seed)
    served_model = paths.input.get("llm_model")  # the served model file, when the job serves one
    server_log = paths.log["server"]
    with consumer_endpoint(judge, settings.llm_server, "text.judge", server_log, served_model, paths.threads) as served:
        judge = judge.model_copy(update={"base_url": served["base_url"], "model": served["model"]})
        engine = served.get("server_engine")
        client = client_from_settings(judge, engine)
        labels, stats = judge_sample(sample, client, available, judge, reply_format_for(judge, engine))
    write_docs(paths.output["labels"], labels)
    write_json(paths.output["stats"], stats)
    log.info("judge %s labelled %d threads (%d rejected)", stats["judge"], stats["labelled"], stats["rejected"])
    return stats
