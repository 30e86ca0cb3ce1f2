"""Semi-Instruct: turn collected functions into verified instruction-code pairs.

For each Natural-Instruct sample: (1) a rewriter writes an instruction and a normalised version of the code
(a model through the LLM client, or the deterministic template rewriter when no model is configured);
(2) test inputs are generated; (3) the ORIGINAL code runs on them in the sandbox, and its outputs become the
expected outputs (inputs on which the original raises are dropped); (4) the REWRITTEN code runs on the same
inputs, and the pair is kept only when every outcome (return value and arguments after the call) matches.
Both run in one sandbox process per sample (separate namespaces, original first): one interpreter start
instead of two, which halves the cost of this stage.

Curriculum: the kept pairs are ordered by the number of tests they passed, ascending (ties by id). The
Semi-Instruct paper ranks pairs by their test count; we put the best-verified pairs LAST, where training
with a decaying learning rate ends, so the final updates come from the most trustworthy data.
"""

from __future__ import annotations

import ast
import json
import logging
import multiprocessing
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import PositiveInt
from tqdm import tqdm

from ..io import Funnel, doc_meta, make_doc, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..sandbox import call_repr, detect_isolation, run_programs
from ..settings import LLMServerSettings, RewriterSettings, SandboxSettings, Settings, SftSettings
from ..tokenization.chat import render_chat
from .inputs import Call, format_call, generate_calls

log = logging.getLogger(__name__)

SOURCE = "sft_code"
REASONS = ("rewrite_failed", "no_inputs", "module_error", "no_valid_tests", "mismatch", "timeout", "sandbox_error")


class RewriteError(Exception):
    """The rewriter produced nothing usable for this sample; ``cause`` names why, for the stats."""

    def __init__(self, message: str, cause: str = "unusable_rewrite"):
        super().__init__(message)
        self.cause = cause


class Rewriter(Protocol):
    """Writes the instruction and the proper code for a sample, and proposes test inputs."""

    name: str

    def rewrite(self, sample: dict) -> tuple[str, str]: ...

    def generate_inputs(self, sample: dict, n: int, rng: random.Random) -> list[Call]: ...


# ------------------------------------------------------------------------------------ template rewriter


_IMPERATIVE_VERBS = frozenset(
    [
        "return",
        "compute",
        "calculate",
        "convert",
        "check",
        "determine",
        "find",
        "get",
        "create",
        "make",
        "build",
        "generate",
        "parse",
        "split",
        "join",
        "format",
        "normalize",
        "normalise",
        "remove",
        "strip",
        "add",
        "count",
        "validate",
        "ensure",
        "extract",
        "replace",
        "escape",
        "unescape",
        "quote",
        "unquote",
        "encode",
        "decode",
        "merge",
        "sort",
        "filter",
        "apply",
        "turn",
        "translate",
        "transform",
        "map",
        "produce",
        "construct",
        "evaluate",
        "estimate",
        "decide",
        "tell",
        "compare",
        "combine",
        "flatten",
        "wrap",
        "indent",
        "dedent",
        "pad",
        "truncate",
        "round",
        "clamp",
        "resolve",
        "expand",
        "collect",
        "select",
        "pick",
        "choose",
        "guess",
        "infer",
        "detect",
        "match",
        "search",
        "locate",
        "give",
        "update",
        "append",
        "insert",
        "reverse",
        "rotate",
        "shift",
        "scale",
        "sum",
        "multiply",
        "divide",
        "subtract",
        "concatenate",
        "serialize",
        "deserialize",
        "render",
        "coerce",
        "cast",
        "canonicalize",
        "simplify",
        "reduce",
        "accumulate",
        "group",
        "partition",
        "chunk",
        "slice",
        "iterate",
        "walk",
        "traverse",
        "visit",
        "process",
        "handle",
        "prepare",
        "fix",
        "clean",
        "sanitize",
        "tokenize",
        "scan",
        "hash",
        "sign",
        "verify",
        "test",
        "look",
        "take",
        "fill",
        "trim",
        "lower",
        "upper",
        "capitalize",
        "interpolate",
        "approximate",
        "sanitise",
        "remap",
        "rename",
        "strip",
        "split",
    ]
)


def first_paragraph(docstring: str, limit: int = 400) -> str:
    """The docstring's summary: first paragraph, reST markup reduced, whitespace collapsed."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    paragraph = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", paragraph)
    paragraph = paragraph.replace("``", "`")
    paragraph = " ".join(paragraph.split())
    if len(paragraph) > limit:
        paragraph = paragraph[:limit].rsplit(" ", 1)[0] + " ..."
    return paragraph


def third_person(verb: str) -> str:
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def template_instruction(sample: dict) -> str:
    """ "Write a Python function `name(a, b=1)` that ..." from the docstring summary and the signature."""
    signature = sample["call_signature"]
    summary = first_paragraph(sample.get("docstring") or "")
    words = summary.split(" ", 1)
    first = words[0].rstrip(".,:;").lower() if words and words[0] else ""
    rest = words[1] if len(words) > 1 else ""
    if first in _IMPERATIVE_VERBS:
        sentence = f"Write a Python function `{signature}` that {third_person(first)} {rest}".rstrip()
    elif first.endswith("s") and first[:-1] in _IMPERATIVE_VERBS | {v[:-1] for v in _IMPERATIVE_VERBS}:
        sentence = f"Write a Python function `{signature}` that {first} {rest}".rstrip()
    else:
        sentence = f"Write a Python function `{signature}`. {summary}".rstrip()
    if not sentence.endswith((".", "!", "?", "...")):
        sentence += "."
    examples = [ex for ex in sample.get("doctests") or [] if ex.get("want")][:2]
    if examples:
        shown = "; ".join(f"`{ex['call']}` returns `{ex['want']}`" for ex in examples)
        sentence += f" For example, {shown}."
    return sentence


def normalise_code(program: str) -> str:
    """Comments dropped, layout normalised (the AST round trip keeps docstrings and semantics)."""
    return ast.unparse(ast.parse(program)) + "\n"


class TemplateRewriter:
    """Deterministic, model-free rewriter: instruction from docstring + signature, code via the AST."""

    name = "template"

    def rewrite(self, sample: dict) -> tuple[str, str]:
        try:
            code = normalise_code(sample["code"])
        except (SyntaxError, ValueError, RecursionError) as err:
            raise RewriteError(f"cannot normalise: {err}", "original_does_not_parse") from err
        return template_instruction(sample), code

    def generate_inputs(self, sample: dict, n: int, rng: random.Random) -> list[Call]:
        return generate_calls(sample, n, rng)


# ----------------------------------------------------------------------------------------- LLM rewriter


REWRITE_PROMPT = """You turn real-world Python code into an instruction-tuning example.
Below is a function `{name}` (with the imports and helpers it needs) taken from the repository {origin}.
1. Write one clear instruction a user could give to ask for this function: what it does, its signature
   `{signature}`, inputs and output.
2. Rewrite the code in a clean, conventional style: keep the function name, its parameters, its behaviour
   and its helpers exactly; add or fix the docstring; remove dead code and odd formatting.
Answer exactly in this format:
Instruction: <the instruction>
```python
<the rewritten code>
```

Code:
```python
{code}
```
"""

INPUTS_PROMPT = """Propose {n} different test inputs for the Python function below.
Write one input per line as a Python tuple of the positional arguments, using literals only
(numbers, strings, booleans, None, lists, tuples, dicts), e.g. (1, 'abc', [2, 3]). No other text.

```python
{code}
```
"""

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


class LLMRewriter:
    """Rewrites through an LLM client (``try_complete(prompts)``, see abacus_repro.llm); inputs from the model
    too, topped up by the template generator when the model proposes too few usable ones.

    Every reply is checked, never trusted: no instruction or code block, code that does not parse or does not
    define the function, or a prompt the server refused (longer than its context) is a RewriteError with its
    cause, and the sample is dropped and counted (``rewrite_failed``). An untrained model's garbage therefore
    costs samples, never the run; the sandbox then checks every rewrite that parses against the original.
    """

    def __init__(self, client: Any, name: str | None = None):
        self.client = client
        self.name = name or f"llm:{getattr(client, 'name', type(client).__name__)}"
        self._fallback = TemplateRewriter()

    def rewrite(self, sample: dict) -> tuple[str, str]:
        return self.rewrite_many([sample])[0]

    def rewrite_many(self, samples: Sequence[dict]) -> list[tuple[str, str] | RewriteError]:
        prompts = [
            REWRITE_PROMPT.format(
                name=s["function"], origin=s.get("origin", ""), signature=s["signature"], code=s["code"].rstrip()
            )
            for s in samples
        ]
        replies = _try_complete(self.client, prompts)
        return [
            RewriteError(f"the server refused the prompt: {reply}"[:300], "request_rejected")
            if isinstance(reply, Exception)
            else self._parse_rewrite(reply, sample)
            for reply, sample in zip(replies, samples, strict=True)
        ]

    @staticmethod
    def _parse_rewrite(reply: str, sample: dict) -> tuple[str, str] | RewriteError:
        match = _FENCE.search(reply or "")
        head = (reply or "").split("```", 1)[0]
        instruction = re.sub(r"^\s*Instruction:\s*", "", head, flags=re.IGNORECASE).strip()
        if not match or not instruction:
            return RewriteError("reply lacks an instruction or a code block", "no_instruction_or_code")
        try:
            code = normalise_code(match.group(1))
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            return RewriteError(f"rewritten code does not parse: {err}", "code_does_not_parse")
        defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
        if sample["function"] not in defined:
            return RewriteError(f"rewritten code does not define {sample['function']}", "function_missing")
        return instruction, code

    def generate_inputs(self, sample: dict, n: int, rng: random.Random) -> list[Call]:
        return self.generate_inputs_many([sample], n, [rng])[0]

    def generate_inputs_many(self, samples: Sequence[dict], n: int, rngs: Sequence[random.Random]) -> list[list[Call]]:
        """Inputs for many samples in one batch of requests (the client keeps ``concurrency`` in flight)."""
        prompts = [INPUTS_PROMPT.format(n=n, code=sample["code"].rstrip()) for sample in samples]
        replies = _try_complete(self.client, prompts)
        return [
            self._calls_from_reply("" if isinstance(reply, Exception) else reply, sample, n, rng)
            for reply, sample, rng in zip(replies, samples, rngs, strict=True)
        ]

    def _calls_from_reply(self, reply: str, sample: dict, n: int, rng: random.Random) -> list[Call]:
        calls: list[Call] = []
        for line in (reply or "").splitlines():
            try:
                value = ast.literal_eval(line.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            args = list(value) if isinstance(value, tuple) else [value]
            call = (args, {})
            if repr(call) not in {repr(c) for c in calls}:
                calls.append(call)
        if len(calls) < n:
            calls += [c for c in self._fallback.generate_inputs(sample, n, rng) if repr(c) not in map(repr, calls)]
        return calls[:n]


def _try_complete(client: Any, prompts: list[str]) -> list:
    """Replies in order; a prompt the server refuses comes back as the exception, not raised (any LLMClient)."""
    if hasattr(client, "try_complete"):
        return list(client.try_complete(prompts))
    return list(client.complete(prompts))


# The sft.rewriter keys (named as text.judge's) -> each backend's client constructor arguments.
_CLIENT_ARGS = {
    "openai": {
        "base_url": "base_url",
        "model": "model",
        "timeout_s": "timeout",
        "max_retries": "retries",
        "concurrency": "concurrency",
        "max_tokens": "max_tokens",
        "cache_dir": "cache_dir",
        "extra_body": "extra_body",
    },
    "transformers": {"model": "model_dir", "concurrency": "batch_size", "max_tokens": "max_new_tokens"},
}


def make_rewriter(settings: dict) -> Rewriter:
    """The configured rewriter (the resolved ``sft.rewriter`` section): ``backend: metadata`` is the template
    rewriter; ``openai`` (base_url, model, timeout_s, max_retries, concurrency, max_tokens,
    cache_dir, extra_body) and ``transformers`` (model: a local directory; concurrency, max_tokens) go through
    abacus_repro.llm. A null key keeps the client's own behaviour (e.g. no extra_body)."""
    settings = dict(settings)
    backend = settings.pop("backend")
    if backend in (None, "metadata", "template"):
        return TemplateRewriter()
    from ..errors import InputError
    from ..llm import get_client  # imported only when a model is configured

    if backend not in _CLIENT_ARGS:
        raise InputError(None, f"sft.rewriter.backend must be metadata, openai or transformers, got {backend!r}")
    if not settings.get("model") or (backend == "openai" and not settings.get("base_url")):
        raise InputError(None, f"sft.rewriter with backend {backend} needs model" + (
            " and base_url (or llm_server.engine, a server the job starts)" if backend == "openai" else ""))  # fmt: skip
    arguments = {arg: settings[key] for key, arg in _CLIENT_ARGS[backend].items() if settings.get(key) is not None}
    return LLMRewriter(get_client(backend, **arguments))


# --------------------------------------------------------------------------------------- verification


def ruff_format(codes: list[str]) -> tuple[list[str], str]:
    """Format many programs with one `ruff format` call; returns (codes, formatter used)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists() or not codes:
        return codes, "ast.unparse"
    with tempfile.TemporaryDirectory(prefix="abacus-ruff-") as tmp:
        paths = []
        for index, code in enumerate(codes):
            path = Path(tmp) / f"s{index:06d}.py"
            path.write_text(code, encoding="utf-8")
            paths.append(path)
        # --isolated: the same layout whatever configuration the working directory has.
        subprocess.run([ruff, "format", "--isolated", "--quiet", tmp], capture_output=True, check=False)
        formatted = [path.read_text(encoding="utf-8") for path in paths]
    return formatted, "ruff format"


def verify_task(task: dict) -> dict:
    """Runs in a pool worker: original and rewritten on all inputs, in one sandbox process per sample (each in
    its own namespace, original first). Inputs on which the original raises are not tests; the rewritten code
    must reproduce every remaining outcome (return value and arguments after the call). Outcomes that are
    only object identities are not tests either."""
    limits = {"timeout": task["timeout"], "memory_mb": task["memory_mb"]}
    calls = [call_repr(args, kwargs) for args, kwargs in task["calls"]]
    programs = {"original": task["original"], "rewritten": task["rewritten"]}
    # Per-call limit in CPU seconds (the harness's timers; load hardly moves them, so the same calls are
    # tests on an idle and on a busy machine). A call of the original using more than half of it is not a
    # test: the rewritten code, a little slower, could then time out where the original did not.
    call_timeout = min(1.0, task["timeout"] / (2 * len(calls) + 2))
    results = run_programs(
        programs, task["function"], calls, call_timeout=call_timeout, only_where_first_ok=True, **limits
    )
    original, rewritten = results["original"], results["rewritten"]
    outcome: dict[str, Any] = {"id": task["id"], "isolation": original.isolation}
    failure = _process_failure(original, "original")
    if failure:
        return {**outcome, **failure}
    if original.module_error:
        return {**outcome, "reason": "module_error", "detail": f"original: {original.module_error}"}
    valid = [i for i, o in enumerate(original.outcomes) if _informative(o, call_timeout / 2)][: task["max_tests"]]
    if not valid:
        return {**outcome, "reason": "no_valid_tests", "detail": _no_test_detail(original.outcomes)}
    failure = _process_failure(rewritten, "rewritten")
    if failure:
        return {**outcome, **failure}
    if rewritten.module_error:
        return {**outcome, "reason": "mismatch", "detail": f"rewritten module raised {rewritten.module_error}"}
    for index in valid:
        expected, got = original.outcomes[index], rewritten.outcomes[index]
        if got.error == "Timeout":  # too slow this time, which says nothing about correctness
            shown = format_call(task["function"], task["calls"][index])
            return {**outcome, "reason": "timeout", "detail": f"rewritten: {shown} exceeded its time"}
        if got.key() != expected.key():
            shown = format_call(task["function"], task["calls"][index])
            return {
                **outcome,
                "reason": "mismatch",
                "detail": _without_addresses(
                    f"{shown}: expected {expected.value!r:.200}, got {(got.value or got.error)!r:.200}"
                ),
            }
    tests = [
        {"call": format_call(task["function"], task["calls"][i]), "expected": original.outcomes[i].value} for i in valid
    ]
    return {**outcome, "reason": None, "tests": tests}


# Object reprs carry memory addresses (`<X at 0x7f...>`, `<x-y-z @ 1404...>`), which differ between runs: masked
# so that the dropped records, not only the decisions, are byte-identical from run to run.
_ADDRESS = re.compile(r"(?:0x[0-9a-fA-F]{6,}|(?<=@ )[0-9]{8,})")


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub("<address>", text)


def _no_test_detail(outcomes) -> str:
    # Time-dependent outcomes (a timeout here, a slow return there) share one label, so the detail reads the
    # same on a loaded and on an idle machine.
    labels = set()
    for o in outcomes:
        if not o.ok and o.error == "Timeout":
            # What follows a call cut short by its timer depends on the exact instruction it was cut at (a
            # half-done import, say): not reproducible, so not reported.
            labels.add("too slow")
            break
        if not o.ok:
            labels.add(o.error)
        else:
            labels.add("an object identity" if " at 0x?" in (o.value or "") + (o.args_after or "") else "too slow")
    names = sorted(labels - {"too slow"}) + (["too slow"] if "too slow" in labels else [])
    return f"no usable outcome on {len(outcomes)} inputs: {', '.join(names)}"


def _informative(outcome, slow: float) -> bool:
    """A usable test: the original returned in good time, and with more than an object identity
    ("<X object at 0x?>", which any implementation returning some X would match)."""
    if not outcome.ok or (outcome.seconds is not None and outcome.seconds >= slow):
        return False
    return " at 0x?" not in (outcome.value or "") and " at 0x?" not in (outcome.args_after or "")


def _process_failure(result, which: str) -> dict | None:
    if result.completed:
        return None
    reason = "timeout" if result.status == "timeout" else "sandbox_error"
    return {"reason": reason, "detail": f"{which}: sandbox {result.status}: {result.stderr[-300:].strip()}"}


def _sample(doc: dict) -> dict:
    sample = doc_meta(doc)
    sample["code"] = doc["text"]
    sample["id"] = doc["id"]
    return sample


class SemiInstructJob(Settings):
    """What rule sft_semi_instruct reads: the seed, the parts of ``sft:`` it uses (so editing another SFT key
    re-runs no sandbox work), and ``llm_server`` when the job serves the rewriter's model (None otherwise)."""

    seed: int
    rewriter: RewriterSettings
    sandbox: SandboxSettings
    max_tests_per_function: PositiveInt
    llm_server: LLMServerSettings | None = None

    @classmethod
    def of(cls, sft: SftSettings, seed: int) -> SemiInstructJob:
        """The job a run with this ``sft:`` section and seed would run (for calls by hand)."""
        return cls(
            seed=seed, rewriter=sft.rewriter, sandbox=sft.sandbox, max_tests_per_function=sft.max_tests_per_function
        )


def run_sft_semi_instruct(settings: SemiInstructJob, paths: RulePaths) -> dict:
    """Rule sft_semi_instruct: rewrite, generate tests, keep pairs whose rewritten code matches the original.

    With ``sft.rewriter.backend: openai`` and no ``base_url``, the job serves the rewriter's model itself for its
    own lifetime (``llm_server``; abacus_repro.llm.server), its output in the rule's log named server.
    """
    from ..llm import consumer_endpoint

    served_model = paths.input.get("llm_model")  # the served model file, when the job serves one
    with consumer_endpoint(
        settings.rewriter, settings.llm_server, "sft.rewriter", paths.log["server"], served_model, paths.threads
    ) as rewriter_settings:
        kept, dropped, stats = semi_instruct(
            read_docs(paths.input["natural"]),
            settings,
            rewriter=make_rewriter(rewriter_settings),
            workers=paths.threads,
        )
    write_docs(paths.output["kept"], kept)
    write_docs(paths.output["dropped"], dropped, dropped=True)
    write_json(paths.output["stats"], stats)
    log.info("semi-instruct: kept %d of %d (%s)", stats["kept"], stats["read"], stats["dropped"])
    return stats


def semi_instruct(
    natural_docs: Iterable[dict],
    settings: SemiInstructJob,
    rewriter: Rewriter | None = None,
    workers: int = 2,
) -> tuple[list[dict], list[dict], dict]:
    """Rewrite, generate inputs, verify in the sandbox. Returns (kept, dropped, stats).

    ``rewriter``: the one ``settings.rewriter`` configures when None."""
    docs = list(natural_docs)
    seed = settings.seed
    rewriter = rewriter or make_rewriter(settings.rewriter)
    sandbox = settings.sandbox
    max_tests = settings.max_tests_per_function
    funnel = Funnel("sft_semi_instruct")
    samples = [_sample(doc) for doc in docs]

    rewrites = _rewrite_all(rewriter, samples)
    good = [i for i, r in enumerate(rewrites) if not isinstance(r, RewriteError)]
    codes, formatter = ruff_format([rewrites[i][1] for i in good])
    for i, code in zip(good, codes):
        rewrites[i] = (rewrites[i][0], code)

    dropped: list[dict] = []
    tasks = []
    rewrite_failures: Counter[str] = Counter()
    all_calls = _inputs_all(rewriter, [samples[i] for i in good], 2 * max_tests, seed)
    calls_of = {samples[i]["id"]: calls for i, calls in zip(good, all_calls, strict=True)}
    for sample, doc, rewrite in zip(samples, docs, rewrites):
        if isinstance(rewrite, RewriteError):
            rewrite_failures[rewrite.cause] += 1
            dropped.append(_dropped(doc, "rewrite_failed", str(rewrite), rewrite_cause=rewrite.cause))
            continue
        calls = calls_of[sample["id"]]
        if not calls:
            dropped.append(_dropped(doc, "no_inputs", "no usable inputs could be generated"))
            continue
        tasks.append(
            {
                "id": sample["id"],
                "function": sample["function"],
                "original": sample["code"],
                "rewritten": rewrite[1],
                "calls": calls,
                "max_tests": max_tests,
                "timeout": float(sandbox.timeout_s),
                "memory_mb": int(sandbox.memory_mb),
            }
        )

    results = _run_tasks(tasks, workers)
    by_id = {doc["id"]: (doc, sample, rewrite) for doc, sample, rewrite in zip(docs, samples, rewrites)}
    kept: list[dict] = []
    isolations: set[str] = set()
    for result in results:
        doc, sample, (instruction, code) = by_id[result["id"]]
        isolations.add(result["isolation"])
        if result["reason"]:
            dropped.append(_dropped(doc, result["reason"], result["detail"], isolation=result["isolation"]))
            continue
        kept.append(_kept_doc(sample, instruction, code, result, rewriter.name, formatter))

    kept.sort(key=lambda d: (doc_meta(d)["tests_passed"], d["id"]))
    dropped.sort(key=lambda d: d["id"])
    for _ in kept:
        funnel.keep()
    for record in dropped:
        funnel.drop(record["reason"])
    tests = [doc_meta(d)["tests_passed"] for d in kept]
    funnel.extra.update(
        rewriter=rewriter.name,
        rewrite_failed_by_cause=dict(sorted(rewrite_failures.items())),
        formatter=formatter,
        isolation=sorted(isolations),
        tests_total=sum(tests),
        tests_per_pair={str(k): tests.count(k) for k in sorted(set(tests))},
        curriculum="tests_passed ascending",
    )
    return kept, dropped, funnel.to_dict()


def _rewrite_all(rewriter: Rewriter, samples: list[dict]) -> list:
    if hasattr(rewriter, "rewrite_many"):
        return list(rewriter.rewrite_many(samples))
    results: list = []
    for sample in samples:
        try:
            results.append(rewriter.rewrite(sample))
        except RewriteError as err:
            results.append(err)
    return results


def _inputs_all(rewriter: Rewriter, samples: list[dict], n: int, seed: int) -> list[list[Call]]:
    """Test inputs for every sample; one seeded generator per sample, so the inputs are the same whatever the
    order, the batching or the number of workers."""
    rngs = [random.Random(f"{seed}:{sample['id']}") for sample in samples]
    if hasattr(rewriter, "generate_inputs_many"):
        return list(rewriter.generate_inputs_many(samples, n, rngs))
    return [rewriter.generate_inputs(sample, n, rng) for sample, rng in zip(samples, rngs, strict=True)]


def _run_tasks(tasks: list[dict], workers: int) -> list[dict]:
    progress = {"total": len(tasks), "desc": "semi-instruct", "file": sys.stderr, "mininterval": 5}
    if workers <= 1 or len(tasks) < 2:
        return [verify_task(task) for task in tqdm(tasks, **progress)]
    detect_isolation()  # probed once here, inherited by the workers
    # fork: workers inherit the loaded package and the probed isolation layer.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(verify_task, tasks, chunksize=1), **progress))


def _kept_doc(sample: dict, instruction: str, code: str, result: dict, rewriter: str, formatter: str) -> dict:
    response = f"```python\n{code.rstrip()}\n```"
    meta = {
        "kind": "code",
        "instruction": instruction,
        "response": response,
        "tests_passed": len(result["tests"]),
        "tests": result["tests"],
        "origin": sample.get("origin"),
        "function": sample["function"],
        "repo": sample.get("repo"),
        "path": sample.get("path"),
        "natural_id": sample["id"],
        "rewriter": rewriter,
        "formatter": formatter,
        "isolation": result["isolation"],
    }
    return make_doc(render_chat(instruction, response), SOURCE, meta)


def _dropped(doc: dict, reason: str, detail: str, **extra: Any) -> dict:
    meta = doc_meta(doc)
    meta.update(extra)
    return {
        "id": doc["id"],
        "text": doc["text"],
        "source": doc.get("source", ""),
        "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
        "reason": reason,
        "detail": detail,
    }
