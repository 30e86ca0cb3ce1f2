"""Training batches from the packed arrays: tokens, block-mask document ids, per-document positions, labels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

ARRAYS = ("tokens", "segments", "loss_mask")
IGNORE_INDEX = -100


def load_packed_arrays(data: str | Path | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Memory-map tokens/segments/loss_mask from a tokenized directory or a mapping of the three paths."""
    if isinstance(data, Mapping):
        paths = {name: Path(data[name]) for name in ARRAYS}
    else:
        paths = {name: Path(data) / f"{name}.npy" for name in ARRAYS}
    arrays = {}
    for name, path in paths.items():
        if not path.exists():
            raise InputError(path, f"packed {name} array not found")
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except ValueError as err:
            raise InputError(path, f"not a NumPy array file ({err})") from err
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) != 1 or arrays["tokens"].ndim != 2:
        raise InputError(paths["tokens"].parent, f"packed arrays disagree in shape or are not 2-D: {shapes}")
    return arrays


def segment_starts(segments: np.ndarray) -> np.ndarray:
    """True where a new piece (document, chunk or the padding run) begins in its row."""
    starts = np.ones(segments.shape, dtype=bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return starts


def position_ids_from_segments(segments: np.ndarray) -> np.ndarray:
    """Positions that restart at 0 at every piece, so a packed document sees the positions it would alone."""
    index = np.broadcast_to(np.arange(segments.shape[1], dtype=np.int64), segments.shape)
    start_index = np.where(segment_starts(segments), index, 0)
    return index - np.maximum.accumulate(start_index, axis=1)


def labels_from_batch(tokens: np.ndarray, segments: np.ndarray, loss_mask: np.ndarray) -> np.ndarray:
    """Labels aligned with input_ids (the Hugging Face convention: the model shifts them by one itself).

    A token is a label when it is a prediction target (loss_mask) and its predecessor belongs to the same piece:
    the first token of a piece has no context inside its block and must not be predicted from the previous
    document's ``</s>``. Padding never counts.
    """
    labels = tokens.astype(np.int64)
    keep = (loss_mask.astype(bool)) & (segments >= 0) & ~segment_starts(segments)
    labels[~keep] = IGNORE_INDEX
    return labels


def make_batch(arrays: Mapping[str, np.ndarray], rows: np.ndarray, document_mask: bool = True) -> dict[str, np.ndarray]:
    """input_ids, document_ids, position_ids and labels for the given rows (copied out of the memory map).

    ``document_mask=False`` is plain causal packing (``train.attention: plain``): no document ids and positions
    0..seq_len-1 along the row, so the model attends causally over the whole row, across documents, whatever its
    attention path. The labels stay the block mask's, so both variants are scored on the same targets.
    """
    tokens = np.asarray(arrays["tokens"][rows], dtype=np.int64)
    segments = np.asarray(arrays["segments"][rows], dtype=np.int64)
    loss_mask = np.asarray(arrays["loss_mask"][rows])
    labels = labels_from_batch(tokens, segments, loss_mask)
    if not document_mask:
        positions = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int64), tokens.shape).copy()
        return {"input_ids": tokens, "position_ids": positions, "labels": labels}
    return {
        "input_ids": tokens,
        "document_ids": segments,
        "position_ids": position_ids_from_segments(segments),
        "labels": labels,
    }
