"""Batched tokenization and greedy packing into rows of ``seq_len`` tokens.

Every document becomes its tokens followed by ``</s>``; with ``pack.fim.rate`` > 0 a seeded share of the code
documents is first laid out for fill-in-the-middle (fim.py). A document longer than a row is split into
row-sized pieces; pieces are packed greedily into rows (first fit among the few most recently opened rows, so
neighbouring documents stay neighbours and padding stays low). Each row records which piece every token
belongs to (``segments``: 0, 1, 2, ... within the row, -1 for padding): the trainer turns that into the block
attention mask (no token attends across documents) and into positions that restart per document.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import InputError
from ..io import write_json
from .chat import render_prompt
from .fim import FimCounts, FimCut, FimIds, FimPlan, draw_cut, fim_ids, is_code, layout, split_text, transform_tokens

log = logging.getLogger(__name__)

# Texts per tokenizer call: large enough for the Rust tokenizer to parallelise inside a call, small enough to
# keep memory flat. With several workers, these chunks are what the processes take turns on.
ENCODE_CHUNK = 1024
# Rows that stay open for later, shorter pieces. A small window keeps packing linear in the number of pieces.
OPEN_ROWS = 32


@dataclass
class PackedData:
    tokens: np.ndarray  # int32 (rows, seq_len)
    segments: np.ndarray  # int32 (rows, seq_len): piece index within the row, -1 = padding
    loss_mask: np.ndarray  # uint8 (rows, seq_len): 1 where the token is a prediction target
    meta: dict[str, Any] = field(default_factory=dict)


def load_tokenizer(path: str | Path):
    """The run's tokenizer (a directory, or the tokenizer.json inside it), loaded the way the model stage saves it."""
    from ..model.tokenizer import load_tokenizer as load_saved_tokenizer

    try:
        return load_saved_tokenizer(path)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot load the tokenizer ({err})") from err


def tokenizer_hash(tokenizer) -> str:
    """sha256 of the tokenizer's serialised model and special tokens: names the vocabulary the ids belong to."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    digest.update(json.dumps(special_ids(tokenizer), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def special_ids(tokenizer) -> dict[str, int]:
    """eos and pad ids; a tokenizer without them cannot build training rows."""
    ids = {}
    for name, fallback in (("eos", "</s>"), ("pad", "<pad>")):
        value = getattr(tokenizer, f"{name}_token_id", None)
        if value is None:
            value = tokenizer.convert_tokens_to_ids(fallback)
            if value is None or value == getattr(tokenizer, "unk_token_id", None):
                raise InputError(None, f"tokenizer has no {name} token ({fallback!r})")
        ids[name] = int(value)
    return ids


def encode_batch(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens added by the tokenizer's post-processor."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
    return [list(ids) for ids in encoded["input_ids"]]


_WORKER_TOKENIZER = None


def _init_encode_worker(tokenizer) -> None:
    # Each worker process encodes its chunks on one thread: the processes are the parallelism.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_chunk(texts: list[str]) -> list[np.ndarray]:
    # int32 arrays travel back between processes far cheaper than lists of Python ints.
    return [np.asarray(ids, dtype=np.int32) for ids in encode_batch(_WORKER_TOKENIZER, texts)]


def _encode_all(tokenizer, texts: Sequence[str], desc: str, workers: int = 1) -> list[list[int]]:
    """Token ids of every text, in order: batched calls in this process, or chunks over ``workers`` processes."""
    chunks = [list(texts[start : start + ENCODE_CHUNK]) for start in range(0, len(texts), ENCODE_CHUNK)]
    out: list[list[int]] = []
    with tqdm(total=len(texts), desc=desc, unit="doc", mininterval=5.0) as bar:
        if workers > 1 and len(chunks) > 1:
            # fork: the workers inherit the loaded tokenizer instead of unpickling it; map keeps the order.
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_encode_worker, initargs=(tokenizer,)
            ) as pool:
                for chunk, encoded in zip(chunks, pool.map(_encode_chunk, chunks), strict=True):
                    out.extend(ids.tolist() for ids in encoded)
                    bar.update(len(chunk))
        else:
            for chunk in chunks:
                out.extend(encode_batch(tokenizer, chunk))
                bar.update(len(chunk))
    return out


def count_tokens(tokenizer, texts: Sequence[str], desc: str = "count tokens") -> list[int]:
    """Tokens each text costs in a training row: its ids plus the ``</s>`` packing appends."""
    return [len(ids) + 1 for ids in _encode_all(tokenizer, texts, desc)]


def _sft_fields(doc: Mapping[str, Any], source_path: str | None) -> tuple[str, str]:
    meta = json.loads(doc["meta"]) if doc.get("meta") else {}
    instruction, response = meta.get("instruction"), meta.get("response")
    if not isinstance(instruction, str) or not isinstance(response, str):
        raise InputError(source_path, f"SFT document {doc.get('id')!r} lacks meta 'instruction'/'response' strings")
    return instruction, response


def _document_pieces(
    docs: Sequence[Mapping[str, Any]],
    tokenizer,
    sft: bool,
    eos: int,
    source_path: str | None,
    workers: int,
    fim: FimPlan | None,
    fim_counts: FimCounts,
):
    """Per document: (ids, mask) as int32/uint8 arrays, ids ending in </s> (SFT pairs are never FIM-transformed)."""
    if sft:
        pairs = [_sft_fields(doc, source_path) for doc in docs]
        prompts = _encode_all(
            tokenizer, [render_prompt(instruction) for instruction, _ in pairs], "encode prompts", workers
        )
        responses = _encode_all(tokenizer, [response for _, response in pairs], "encode responses", workers)
        for prompt_ids, response_ids in zip(prompts, responses):
            ids = np.asarray(prompt_ids + response_ids + [eos], dtype=np.int32)
            # Only the response and its </s> are prediction targets; the user turn is context.
            mask = np.zeros(len(ids), dtype=np.uint8)
            mask[len(prompt_ids) :] = 1
            yield ids, mask
    else:
        for ids in _pretraining_ids(docs, tokenizer, workers, fim, fim_counts):
            arr = np.asarray(ids + [eos], dtype=np.int32)
            yield arr, np.ones(len(arr), dtype=np.uint8)


def _pretraining_ids(
    docs: Sequence[Mapping[str, Any]], tokenizer, workers: int, plan: FimPlan | None, counts: FimCounts
) -> list[list[int]]:
    """Per document its token ids; code documents FIM-transformed as ``plan`` draws (none without a plan)."""
    texts = [doc["text"] for doc in docs]
    code = [is_code(doc) for doc in docs]
    counts.code_documents += sum(code)
    if plan is None or plan.settings.rate == 0:
        return _encode_all(tokenizer, texts, "encode documents", workers)
    marker_ids = fim_ids(tokenizer)
    if plan.settings.level == "token":
        encoded = _encode_all(tokenizer, texts, "encode documents", workers)
        cuts = [
            draw_cut(plan, doc["id"], len(ids)) if is_doc_code else None
            for doc, ids, is_doc_code in zip(docs, encoded, code)
        ]
        out = [ids if cut is None else transform_tokens(ids, cut, marker_ids) for ids, cut in zip(encoded, cuts)]
    else:
        cuts = [
            draw_cut(plan, doc["id"], len(text)) if is_doc_code else None
            for doc, text, is_doc_code in zip(docs, texts, code)
        ]
        out = _encode_character_fim(tokenizer, texts, cuts, marker_ids, workers)
    for cut in cuts:
        if cut is not None:
            counts.by_mode[cut.mode] += 1
    return out


def _encode_character_fim(
    tokenizer, texts: Sequence[str], cuts: Sequence[FimCut | None], marker_ids: FimIds, workers: int
) -> list[list[int]]:
    """Character level: a transformed document's prefix, middle and suffix are tokenized as three texts."""
    flat: list[str] = []
    for text, cut in zip(texts, cuts):
        flat.extend([text] if cut is None else split_text(text, cut))
    encoded = iter(_encode_all(tokenizer, flat, "encode documents", workers))
    out = []
    for cut in cuts:
        if cut is None:
            out.append(next(encoded))
        else:
            prefix, middle, suffix = next(encoded), next(encoded), next(encoded)
            out.append(layout(cut.mode, prefix, middle, suffix, marker_ids))
    return out


def _split(ids: np.ndarray, mask: np.ndarray, seq_len: int):
    for start in range(0, len(ids), seq_len):
        yield ids[start : start + seq_len], mask[start : start + seq_len]


def _assign_rows(lengths: Iterable[int], seq_len: int) -> tuple[list[tuple[int, int, int]], int]:
    """Greedy first fit over the last OPEN_ROWS rows; returns (row, offset, segment) per piece and the row count."""
    placements: list[tuple[int, int, int]] = []
    open_rows: list[list[int]] = []  # [row index, filled, pieces]
    n_rows = 0
    for length in lengths:
        for entry in open_rows:
            if seq_len - entry[1] >= length:
                placements.append((entry[0], entry[1], entry[2]))
                entry[1] += length
                entry[2] += 1
                break
        else:
            placements.append((n_rows, 0, 0))
            open_rows.append([n_rows, length, 1])
            n_rows += 1
            if len(open_rows) > OPEN_ROWS:
                open_rows.pop(0)
        # A full row can take nothing more; dropping it keeps the scan short.
        open_rows = [entry for entry in open_rows if entry[1] < seq_len]
    return placements, n_rows


def tokenize_and_pack(
    docs: Sequence[Mapping[str, Any]],
    tokenizer,
    seq_len: int,
    sft: bool,
    source_path: str | None = None,
    workers: int = 1,
    fim: FimPlan | None = None,
) -> PackedData:
    """Documents -> packed rows. ``sft``: documents carry meta instruction/response; only responses are targets.

    ``workers`` > 1 encodes chunks of documents in that many processes (same ids, same order). ``fim``: the
    `pack.fim` settings and seed that transform code documents (fim.py); None, as for SFT rows, transforms nothing
    and records ``fim: null`` in the meta.
    """
    if seq_len < 2:
        raise ValueError(f"pack.seq_len must be at least 2, got {seq_len}")
    ids_special = special_ids(tokenizer)
    eos, pad = ids_special["eos"], ids_special["pad"]

    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    skipped_empty = 0
    split_documents = 0
    n_documents = 0
    fim_counts = FimCounts()
    document_pieces = _document_pieces(docs, tokenizer, sft, eos, source_path, workers, fim, fim_counts)
    for doc, (ids, mask) in zip(docs, document_pieces):
        if not sft and len(ids) == 1:
            skipped_empty += 1  # an empty text would be a lone </s>: nothing to learn from
            continue
        n_documents += 1
        if len(ids) > seq_len:
            split_documents += 1
        pieces.extend(_split(ids, mask, seq_len))

    placements, n_rows = _assign_rows((len(ids) for ids, _ in pieces), seq_len)
    tokens = np.full((n_rows, seq_len), pad, dtype=np.int32)
    segments = np.full((n_rows, seq_len), -1, dtype=np.int32)
    loss_mask = np.zeros((n_rows, seq_len), dtype=np.uint8)
    for (ids, mask), (row, offset, segment) in zip(pieces, placements):
        end = offset + len(ids)
        tokens[row, offset:end] = ids
        segments[row, offset:end] = segment
        loss_mask[row, offset:end] = mask

    real = int((segments >= 0).sum())
    meta = {
        "seq_len": seq_len,
        "sft": sft,
        "rows": n_rows,
        "documents": n_documents,
        "pieces": len(pieces),
        "split_documents": split_documents,
        "skipped_empty": skipped_empty,
        "tokens": real,
        "target_tokens": int(loss_mask.sum()),
        "padding_fraction": round(1.0 - real / (n_rows * seq_len), 6) if n_rows else 0.0,
        "eos_id": eos,
        "pad_id": pad,
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "fim": fim_counts.as_meta(fim) if fim is not None and not sft else None,
    }
    log.info(
        "packed %d documents (%d split) into %d rows of %d: %d tokens, padding %.2f%%",
        n_documents,
        split_documents,
        n_rows,
        seq_len,
        real,
        100 * meta["padding_fraction"],
    )
    return PackedData(tokens=tokens, segments=segments, loss_mask=loss_mask, meta=meta)


def write_packed(
    packed: PackedData, tokens: str | Path, segments: str | Path, loss_mask: str | Path, meta: str | Path
) -> None:
    """np.save each array (memory-mappable with np.load(mmap_mode='r')) and the meta as JSON."""
    for path, array in ((tokens, packed.tokens), (segments, packed.segments), (loss_mask, packed.loss_mask)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array))
    write_json(meta, packed.meta)
