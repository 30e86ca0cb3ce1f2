"""Load a model directory and decode greedily in batches.

Greedy decoding with left padding: every prompt in a batch ends at the same position, so new tokens are
appended in step for all rows. Decoding stops per row at the end-of-sequence token or at the first stop
sequence (evalplus's convention for base-model completions); text after a stop sequence is cut off.
Same model, prompts and settings give the same text: no sampling, a fixed batch order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

import torch
from tqdm import tqdm
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from ..errors import InputError
from ..settings import GenerationSettings, PromptStyle  # noqa: F401  (GenerationSettings: for importers)

log = logging.getLogger(__name__)

PROMPT_STYLES = get_args(PromptStyle)
# Below this many parameters a forward pass is a handful of tiny matrix products: splitting them over threads
# costs more in synchronisation than it saves, and on a busy machine OpenMP's spin-waiting made 2 threads
# 20x slower than 1 (0.9 s vs 18 s for 8 HumanEval prompts x 128 tokens on the tiny default model).
SINGLE_THREAD_BELOW_PARAMS = 50_000_000


def import_model_package() -> bool:
    """Register our MiniCPM-architecture model with transformers' Auto classes, when the package exists.

    Returns whether it was imported. A model directory of a stock architecture (e.g. Llama) loads without it.
    """
    try:
        import abacus_repro.model  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "abacus_repro.model":
            raise
        return False
    return True


# A Hugging Face hub id: "name" or "owner/name" (letters, digits, "-", "_", ".").
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def resolve_model_ref(model_ref: str | Path) -> str:
    """A model directory (must hold config.json) or a hub id; anything else is an InputError.

    A hub id is loaded by transformers from its cache or, on an online machine, downloaded; a path that exists
    on disk is always taken as a directory, so a local model never turns into a download.
    """
    text = str(model_ref)
    path = Path(text)
    if path.exists() or text.startswith((".", "/", "~")) or not HUB_ID.fullmatch(text):
        if not (path / "config.json").is_file():
            raise InputError(path, "not a model directory (no config.json)")
        return str(path)
    return text


def load_model(model_ref: str | Path, threads: int | None = None):
    """Model (float32, eval mode, CPU unless CUDA is present) and tokenizer from a Hugging Face directory or
    hub id (see ``resolve_model_ref``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_ref(model_ref)
    model_dir = Path(source)
    import_model_package()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise InputError(source, f"cannot load model or tokenizer ({err})") from err
    if threads:
        n_params = sum(p.numel() for p in model.parameters())
        use = 1 if n_params < SINGLE_THREAD_BELOW_PARAMS else int(threads)
        torch.set_num_threads(use)
        log.info("model %s: %.1fM parameters, %d CPU thread(s)", model_dir, n_params / 1e6, use)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, tokenizer


def resolve_prompt_style(tokenizer, style: str) -> str:
    """``chat`` when asked for, or for ``auto`` when the tokenizer carries a chat template; else ``base``."""
    if style not in PROMPT_STYLES:
        raise InputError("eval.prompt_style", f"must be one of {list(PROMPT_STYLES)}, not {style!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if style == "chat" and not has_template:
        raise InputError("eval.prompt_style", "is 'chat' but the tokenizer has no chat template")
    if style == "auto":
        return "chat" if has_template else "base"
    return style


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    """Text up to (not including) the earliest stop sequence."""
    cut = len(text)
    for stop in stop_sequences:
        where = text.find(stop)
        if where != -1:
            cut = min(cut, where)
    return text[:cut]


def _context_limit(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)


def _pad_id(tokenizer) -> int:
    # Tokenizers of base models often have no pad token; padded positions are masked, so eos serves.
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


class _StopOnText(StoppingCriteria):
    """Stopping criterion: a row is finished once its new text contains a stop sequence."""

    def __init__(self, tokenizer, stop_sequences: Sequence[str], prompt_width: int):
        self.tokenizer = tokenizer
        self.stop_sequences = list(stop_sequences)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        new_tokens = input_ids[:, self.prompt_width :].tolist()
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        done = [any(stop in text for stop in self.stop_sequences) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def encode_prompts(tokenizer, prompts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    return [tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"] for prompt in prompts]


@torch.inference_mode()
def generate_greedy(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_sequences: Sequence[str] = (),
    add_special_tokens: bool = True,
    desc: str = "generate",
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> list[str]:
    """Greedy completions (new text only, cut at the first stop sequence), in the order of ``prompts``.

    ``on_batch(indices, completions)`` is called as each batch finishes (indices into ``prompts``), so a caller
    can start testing those completions while the next batch is generated.
    """
    if max_new_tokens < 1:
        raise InputError("eval.max_new_tokens", "must be at least 1")
    encoded = encode_prompts(tokenizer, prompts, add_special_tokens=add_special_tokens)
    limit = _context_limit(model)
    if limit is not None:
        room = limit - max_new_tokens
        if room < 1:
            raise InputError("eval.max_new_tokens", f"{max_new_tokens} leaves no room for a prompt (context {limit})")
        n_cut = sum(len(ids) > room for ids in encoded)
        if n_cut:
            log.warning("%d prompt(s) longer than %d tokens keep only their last %d tokens", n_cut, room, room)
        # Keep the end of a long prompt: it holds the function signature the model has to continue.
        encoded = [ids[-room:] for ids in encoded]

    pad_id = _pad_id(tokenizer)
    eos_id = tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
    )
    device = next(model.parameters()).device

    # Longest first, ties by position: batches of similar length waste little padding, and the order is fixed.
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
    outputs: list[str] = [""] * len(encoded)
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, unit="batch"):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        criteria = StoppingCriteriaList()
        if stop_sequences:
            criteria.append(_StopOnText(tokenizer, stop_sequences, width))
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
            stopping_criteria=criteria,
        )
        texts = tokenizer.batch_decode(generated[:, width:].tolist(), skip_special_tokens=True)
        for i, text in zip(batch, texts):
            outputs[i] = truncate_at_stop(text, stop_sequences)
        if on_batch is not None:
            on_batch(list(batch), [outputs[i] for i in batch])
    return outputs
