"""Check exported GGUF files against our model, with the real llama.cpp (llama-cpp-python).

For each file and each fixed prompt:

* tokenization: llama.cpp's ids must equal our tokenizer's (special tokens parsed, BOS as the model wants);
* logits: llama.cpp's logits at every prompt position against our Hugging Face model's: max and mean absolute
  difference and top-1 agreement. Two references: the original float32 model (what a user compares with) and
  the same model carrying the weights exactly as stored in the GGUF (dequantised), which separates rounding
  from conversion errors;
* greedy generation: up to ``max_new_tokens`` tokens from each side, compared token for token.

Each file is held to the thresholds of its type (``export.verify.<type>``: ``min_top1``, ``max_abs_diff`` against
the original model, and ``greedy_equal``, which F16 must meet), and tokenization must be equal; the export fails
otherwise, and also when a file's type has no thresholds. The report lists, per tensor, the type asked for and the
type written (shape-forced fallbacks).

Near ties. Where our model's two best tokens differ by less than the logit error of the file's type, llama.cpp
may rank them the other way for no reason but summation order (CPU kernels differ between machines). Each
disagreement is listed with its *margin* (our logit of our choice minus our logit of llama.cpp's); with a
``tie_margin`` for the type, ``min_top1`` is checked on the agreement beyond ties, and greedy generations must be
identical up to the first step where they part at a near tie. The raw agreement and raw greedy equality are
reported beside them, so a reader sees both.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import write_json
from ..settings import Thresholds, VerifySettings
from .llama_logs import route_llama_logs
from .reader import gguf_metadata, iter_gguf_weights, open_gguf
from .tensor_types import FILE_TYPE_NAMES, file_tensor_records
from .writer import load_hf_model

log = logging.getLogger(__name__)

# F32 is not an export type of the workflow, so export.verify has no thresholds for it; these serve
# `abacus-repro export verify` on an F32 file (exact conversion: F16's with a tie margin for float32 rounding alone).
F32_THRESHOLDS = Thresholds(min_top1=1.0, max_abs_diff=0.05, greedy_equal=True, tie_margin=0.005)
NO_TIE_MARGIN = 0.0  # for a file whose type has no thresholds: every disagreement counts (and the file fails)


def type_thresholds(settings: VerifySettings) -> dict[str, Thresholds]:
    """Every file type's thresholds: export.verify's, one per workflow export type, and F32_THRESHOLDS."""
    configured = {name: value for name, value in settings if isinstance(value, Thresholds)}
    return {**configured, "F32": F32_THRESHOLDS}


class ExportVerificationError(RuntimeError):
    """The GGUF does not reproduce the model closely enough; the message says which check failed."""


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp side
# ---------------------------------------------------------------------------------------------------------------


class LlamaCppRunner:
    """A loaded GGUF: tokenize, logits of a whole prompt, greedy continuation."""

    def __init__(self, path: str | Path, n_ctx: int, threads: int):
        import llama_cpp

        route_llama_logs()
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            logits_all=True,
            verbose=False,
            n_threads=threads,
            n_threads_batch=threads,
            seed=0,
        )
        self.eos = self.llm.token_eos()

    def tokenize(self, text: str) -> list[int]:
        # add_bos=True asks for the model's own special tokens (the GGUF's add_bos flag decides).
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32, copy=True)

    def greedy(self, ids: list[int], max_new_tokens: int) -> list[int]:
        self.llm.reset()
        self.llm.eval(ids)
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            out.append(token)
            if token == self.eos:
                break
            self.llm.eval([token])
        return out

    def close(self) -> None:
        self.llm.close()


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face side
# ---------------------------------------------------------------------------------------------------------------


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


def hf_greedy(model, ids: list[int], max_new_tokens: int, eos: int | None) -> tuple[list[int], np.ndarray]:
    """Greedy continuation with the KV cache (what ``generate(do_sample=False)`` does, without its overhead).

    Returns the tokens and the logits each was chosen from (steps, vocab), to judge where another
    implementation parts from this one.
    """
    import torch

    out: list[int] = []
    step_logits = []
    with torch.no_grad():
        step = model(torch.tensor([ids]), use_cache=True)
        for _ in range(max_new_tokens):
            logits = step.logits[0, -1].float()
            token = int(logits.argmax())
            out.append(token)
            step_logits.append(logits.numpy())
            if token == eos:
                break
            step = model(torch.tensor([[token]]), past_key_values=step.past_key_values, use_cache=True)
    return out, np.stack(step_logits) if step_logits else np.zeros((0, 0), dtype=np.float32)


def threads_for(model, threads: int) -> int:
    """One thread for tiny models: their matrices are so small that thread hand-offs cost more than they save
    (measured: single-token attention 10x slower on 2 threads than on 1)."""
    n_params = sum(p.numel() for p in model.parameters())
    return 1 if n_params < 50_000_000 else max(1, threads)


def compare_logits(ours: np.ndarray, theirs: np.ndarray, tie_margin: float) -> dict:
    """Logit differences and top-1 agreement; every disagreement with our margin for our choice over theirs."""
    diff = np.abs(ours - theirs)
    ours_top, theirs_top = ours.argmax(-1), theirs.argmax(-1)
    disagreements = [
        {
            "position": int(p),
            "ours": int(ours_top[p]),
            "llama_cpp": int(theirs_top[p]),
            "margin": float(ours[p, ours_top[p]] - ours[p, theirs_top[p]]),
        }
        for p in np.flatnonzero(ours_top != theirs_top)
    ]
    positions = int(ours.shape[0])
    beyond_ties = sum(d["margin"] > tie_margin for d in disagreements)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": 1.0 - len(disagreements) / positions,
        "top1_agreement_beyond_ties": 1.0 - beyond_ties / positions,
        "top1_disagreements": disagreements,
        "positions": positions,
    }


def compare_greedy(ours: list[int], step_logits: np.ndarray, theirs: list[int], tie_margin: float) -> dict:
    """Where two greedy generations part, and whether our model was at a near tie there."""
    if ours == theirs:
        return {"equal": True, "diverged_at": None, "near_tie": False}
    step = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    if step >= min(len(ours), len(theirs)):
        # One side stopped (end of text) while the other went on: not a choice between two tokens.
        return {"equal": False, "diverged_at": step, "near_tie": False, "margin": None}
    margin = float(step_logits[step, ours[step]] - step_logits[step, theirs[step]])
    return {
        "equal": False,
        "diverged_at": step,
        "ours": ours[step],
        "llama_cpp": theirs[step],
        "margin": margin,
        "near_tie": margin <= tie_margin,
    }


def _merge(per_prompt: list[dict]) -> dict:
    positions = sum(p["positions"] for p in per_prompt)
    return {
        "max_abs_diff": max(p["max_abs_diff"] for p in per_prompt),
        "mean_abs_diff": sum(p["mean_abs_diff"] * p["positions"] for p in per_prompt) / positions,
        "top1_agreement": sum(p["top1_agreement"] * p["positions"] for p in per_prompt) / positions,
        "top1_agreement_beyond_ties": sum(p["top1_agreement_beyond_ties"] * p["positions"] for p in per_prompt)
        / positions,
        "top1_disagreements": sum(len(p["top1_disagreements"]) for p in per_prompt),
        "positions": positions,
    }


# ---------------------------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------------------------


def load_stored_weights(model, gguf_path: Path, reader=None):
    """Put the GGUF's dequantised weights into ``model`` (in place, one tensor at a time) and return it.

    Copying tensor by tensor keeps the peak at the model plus one tensor (a whole dequantised state dict would
    double the memory: 11 GB more at 2.7B in float32).
    """
    import torch

    params = dict(model.named_parameters())
    tied = bool(getattr(model.config, "tie_word_embeddings", True))
    expected = {name for name in params if not (tied and name == "lm_head.weight")}
    seen, unexpected = set(), []
    source = reader if reader is not None else gguf_path
    with torch.no_grad():
        for name, tensor in iter_gguf_weights(source, model.config, model.state_dict().keys()):
            if name not in params or params[name].shape != tensor.shape:
                unexpected.append(name)
                continue
            params[name].copy_(tensor)
            seen.add(name)
    missing = sorted(expected - seen)
    if unexpected or missing:
        raise ExportVerificationError(
            f"{gguf_path}: tensors do not match the model (missing {missing}, unexpected {unexpected})"
        )
    model.tie_weights()
    return model


def encode_prompts(tokenizer, settings: VerifySettings) -> dict[str, list[int]]:
    """Our tokenizer's ids of each prompt; each must leave room for the generation in n_ctx."""
    encoded = {text: tokenizer(text)["input_ids"] for text in settings.prompts}
    for ids in encoded.values():
        if len(ids) + settings.max_new_tokens > settings.n_ctx:
            raise InputError(None, f"verify prompt of {len(ids)} tokens does not fit n_ctx {settings.n_ctx}")
    return encoded


def compare_prompt(
    runner: LlamaCppRunner,
    stored,
    text: str,
    ids: list[int],
    reference: tuple,
    eos: int | None,
    max_new: int,
    tie_margin: float,
) -> dict:
    """One prompt through llama.cpp against the original model (``reference``: its logits and greedy output)
    and against ``stored``, our model carrying the file's own weights."""
    theirs_ids = runner.tokenize(text)
    theirs_logits = runner.logits(ids)
    ref_logits, (gen_hf, gen_hf_logits) = reference
    cmp_hf = compare_logits(ref_logits, theirs_logits, tie_margin)
    cmp_stored = compare_logits(hf_logits(stored, ids), theirs_logits, tie_margin)
    gen_theirs = runner.greedy(ids, max_new)
    gen_stored, _ = hf_greedy(stored, ids, max_new, eos)
    greedy = compare_greedy(gen_hf, gen_hf_logits, gen_theirs, tie_margin)
    return {
        "prompt": text,
        "tokens": len(ids),
        "tokenization_equal": ids == theirs_ids,
        "vs_hf": cmp_hf,
        "vs_hf_stored_weights": cmp_stored,
        "greedy_llama_cpp": gen_theirs,
        "greedy_equal": greedy["equal"],
        "greedy_divergence": None if greedy["equal"] else greedy,
        "greedy_equal_stored_weights": gen_theirs == gen_stored,
    }


def verify_gguf(
    gguf_path: str | Path,
    model_dir: str | Path,
    settings: VerifySettings,
    thresholds: Mapping[str, Thresholds],
    threads: int,
    model=None,
    tokenizer=None,
    reference_cache: dict | None = None,
    tensor_records: list[dict] | None = None,
) -> dict:
    """Compare one GGUF with the model in ``model_dir``; returns the report (does not raise on bad numbers).

    The original model's logits and generations are computed first and kept in ``reference_cache`` (give the
    same dict for every file); then the model's weights are *replaced in place* by the file's own, dequantised
    ones, the reference that separates rounding from conversion errors. One copy of the weights in memory,
    which matters at 2.7B parameters; a caller that passes ``model`` must not reuse it afterwards.

    ``thresholds``: per file type (only the file's type's tie margin is read here); ``threads``: llama.cpp's.
    ``tensor_records``: the exporter's per-tensor table (type asked for vs written); without it the table is
    judged from the file alone.
    """
    from transformers import AutoTokenizer

    gguf_path, model_dir = Path(gguf_path), Path(model_dir)
    if not gguf_path.exists():
        raise InputError(gguf_path, "GGUF file not found")
    model = model if model is not None else load_hf_model(model_dir)
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(str(model_dir))
    reader = open_gguf(gguf_path)  # one parse of the file's metadata for everything below
    metadata = gguf_metadata(reader)
    eos, max_new = tokenizer.eos_token_id, settings.max_new_tokens
    encoded = encode_prompts(tokenizer, settings)

    cache = reference_cache if reference_cache is not None else {}
    for text, ids in encoded.items():
        if text not in cache:
            cache[text] = (hf_logits(model, ids), hf_greedy(model, ids, max_new, eos))
    stored = load_stored_weights(model, gguf_path, reader)

    file_type = FILE_TYPE_NAMES.get(metadata.get("general.file_type"), str(metadata.get("general.file_type")))
    tie_margin = tie_margin_for(thresholds, file_type)
    runner = LlamaCppRunner(gguf_path, settings.n_ctx, threads)
    try:
        prompts = [
            compare_prompt(runner, stored, text, ids, cache[text], eos, max_new, tie_margin)
            for text, ids in encoded.items()
        ]
    finally:
        runner.close()
    records = tensor_records if tensor_records is not None else file_tensor_records(reader, file_type)
    report = file_report(gguf_path, file_type, records, prompts, tie_margin)
    log_file_report(report)
    return report


def file_report(gguf_path: Path, file_type: str, records: list[dict], prompts: list[dict], tie_margin: float) -> dict:
    """One file's report: its tensor types, its prompts' comparisons and their totals."""
    return {
        "file": gguf_path.name,
        "type": file_type,
        "size_bytes": gguf_path.stat().st_size,
        "tensor_types_written": dict(sorted(Counter(r["written"] for r in records).items())),
        "fallbacks": sum(r["fallback"] for r in records),
        "tensors": records,
        "tokenization_equal": all(p["tokenization_equal"] for p in prompts),
        "vs_hf": _merge([p["vs_hf"] for p in prompts]),
        "vs_hf_stored_weights": _merge([p["vs_hf_stored_weights"] for p in prompts]),
        "tie_margin": tie_margin,
        "greedy_equal": all(p["greedy_equal"] for p in prompts),
        "greedy_equal_up_to_ties": all(p["greedy_equal"] or p["greedy_divergence"]["near_tie"] for p in prompts),
        "greedy_equal_stored_weights": all(p["greedy_equal_stored_weights"] for p in prompts),
        "prompts": prompts,
    }


def log_file_report(report: dict) -> None:
    name = report["file"]
    log.info(
        "%s: tokenization equal %s, top-1 %.4f (beyond ties %.4f; stored weights %.4f), max |diff| %.4g, "
        "greedy equal %s (up to ties %s)",
        name,
        report["tokenization_equal"],
        report["vs_hf"]["top1_agreement"],
        report["vs_hf"]["top1_agreement_beyond_ties"],
        report["vs_hf_stored_weights"]["top1_agreement"],
        report["vs_hf"]["max_abs_diff"],
        report["greedy_equal"],
        report["greedy_equal_up_to_ties"],
    )
    for prompt in report["prompts"]:
        for d in prompt["vs_hf"]["top1_disagreements"]:
            log.info(
                "%s: top-1 differs at %r position %d, our margin %.4g",
                name,
                prompt["prompt"][:30],
                d["position"],
                d["margin"],
            )
        if prompt["greedy_divergence"]:
            log.info("%s: greedy parts at %r: %s", name, prompt["prompt"][:30], prompt["greedy_divergence"])


def tie_margin_for(thresholds: Mapping[str, Thresholds], file_type: str) -> float:
    """The type's ``tie_margin`` (none for a type without thresholds: every disagreement then counts)."""
    own = thresholds.get(file_type)
    return own.tie_margin if own is not None else NO_TIE_MARGIN


def check_report(report: dict, settings: VerifySettings, thresholds: Mapping[str, Thresholds]) -> list[str]:
    """The failed checks of one file's report (empty when it passes), against its type's thresholds."""
    name = report["file"]
    failures = []
    if settings.require_tokenization_equal and not report["tokenization_equal"]:
        failures.append(f"{name}: llama.cpp tokenizes differently from our tokenizer")
    own = thresholds.get(report["type"])
    if own is None:
        failures.append(f"{name}: no thresholds for type {report['type']} in export.verify")
        return failures
    # Where the report was made without a tie margin, both figures are the raw ones.
    top1 = report["vs_hf"]["top1_agreement_beyond_ties"]
    max_diff = report["vs_hf"]["max_abs_diff"]
    ties = f" beyond near ties (our margin <= {report['tie_margin']})" if report.get("tie_margin") else ""
    if top1 < own.min_top1:
        failures.append(f"{name}: top-1 agreement{ties} {top1:.4f} < min_top1 {own.min_top1}")
    if max_diff > own.max_abs_diff:
        failures.append(f"{name}: max |logit diff| {max_diff:.4g} > max_abs_diff {own.max_abs_diff}")
    if own.greedy_equal and not report["greedy_equal_up_to_ties"]:
        differing = [
            p["prompt"][:30] for p in report["prompts"] if not (p["greedy_equal"] or p["greedy_divergence"]["near_tie"])
        ]
        failures.append(
            f"{name}: greedy generation differs from the model's{ties and ' beyond near ties'} on "
            f"{len(differing)} prompt(s) {differing}"
        )
    return failures


def verify_exports(
    gguf_paths: list[str | Path],
    model_dir: str | Path,
    out_json: str | Path,
    settings: VerifySettings,
    threads: int,
    model=None,
    tensor_records: dict[str, list[dict]] | None = None,
    thresholds: Mapping[str, Thresholds] | None = None,
) -> dict:
    """Verify every GGUF, write ``out_json``, and raise ExportVerificationError when a check fails.

    ``settings``: export.verify; ``threads``: the job's, for llama.cpp and torch. ``thresholds``: per file type,
    type_thresholds(settings) unless given (the CLI's overrides). ``tensor_records``: {file path: the exporter's
    per-tensor type table}, where the exporter knows it.
    """
    import torch
    from transformers import AutoTokenizer

    thresholds = dict(thresholds) if thresholds is not None else type_thresholds(settings)
    tensor_records = {str(Path(k)): v for k, v in (tensor_records or {}).items()}
    model = model if model is not None else load_hf_model(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    threads = threads_for(model, threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cache: dict = {}
        reports = [
            verify_gguf(
                path,
                model_dir,
                settings,
                thresholds,
                threads,
                model=model,
                tokenizer=tokenizer,
                reference_cache=cache,
                tensor_records=tensor_records.get(str(Path(path))),
            )
            for path in gguf_paths
        ]
    finally:
        torch.set_num_threads(previous_threads)
    return judge_and_write(reports, model_dir, out_json, settings, thresholds, threads)


def judge_and_write(
    reports: list[dict],
    model_dir: str | Path,
    out_json: str | Path,
    settings: VerifySettings,
    thresholds: Mapping[str, Thresholds],
    threads: int,
) -> dict:
    """Hold each report to its type's thresholds, write verify.json, raise when any file failed."""
    failures = []
    for report in reports:
        own = thresholds.get(report["type"])
        report["thresholds"] = own.model_dump() if own is not None else None
        report["failures"] = check_report(report, settings, thresholds)
        report["passed"] = not report["failures"]
        failures.extend(report["failures"])
    result = {
        "model": Path(model_dir).name,
        "settings": {
            **settings.model_dump(exclude={"prompts"}),
            **{file_type: own.model_dump() for file_type, own in thresholds.items()},
            "threads": threads,
        },
        "n_prompts": len(settings.prompts),
        "files": {report["type"]: report for report in reports},
        "passed": not failures,
        "failures": failures,
    }
    write_json(out_json, result)
    if failures:
        raise ExportVerificationError("; ".join(failures))
    return result
