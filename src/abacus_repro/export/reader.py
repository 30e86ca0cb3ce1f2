"""Reading a GGUF back: its metadata, its tensors' types, its weights in Hugging Face names and layout."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import gguf
import numpy as np

from .tensors import hf_names_by_gguf_name, rope_heads, rope_rows_from_interleaved, tensor_name_map


def open_gguf(path_or_reader) -> gguf.GGUFReader:
    """A gguf.GGUFReader for a path, or the reader given. Reading parses every metadata field in Python (the
    token list alone is ~120k fields at 2.7B), so callers that look at one file several times share a reader."""
    if isinstance(path_or_reader, gguf.GGUFReader):
        return path_or_reader
    return gguf.GGUFReader(str(path_or_reader))


def gguf_tensor_types(path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor name: (shape as rows, columns; GGML type name)} in file order (``path``: a path or a reader)."""
    reader = open_gguf(path)
    return {
        t.name: (tuple(int(d) for d in reversed(t.shape.tolist())), gguf.GGMLQuantizationType(t.tensor_type).name)
        for t in reader.tensors
    }


def iter_gguf_weights(path, config, hf_names: Iterable[str]) -> Iterator[tuple[str, object]]:
    """(Hugging Face name, float32 torch tensor) for each weight in the file, dequantised one at a time.

    ``hf_names``: the model's parameter names (its state dict's keys), which name the file's tensors on the way back;
    a tensor none of them maps to is skipped.
    """
    import torch

    by_gguf_name = hf_names_by_gguf_name(hf_names, tensor_name_map(config.num_hidden_layers))
    for tensor in open_gguf(path).tensors:
        hf_name = by_gguf_name.get(tensor.name)
        if hf_name is None:
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        data = np.asarray(tensor.data)
        if tensor.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            array = data.astype(np.float32).reshape(shape)
        else:
            array = gguf.quants.dequantize(data, tensor.tensor_type).astype(np.float32).reshape(shape)
        heads = rope_heads(tensor.name, config)
        if heads is not None:
            array = rope_rows_from_interleaved(array, heads)
        yield hf_name, torch.from_numpy(np.ascontiguousarray(array))


def gguf_metadata(path) -> dict:
    """Scalar and string metadata of a GGUF (arrays such as the token list are summarised by length)."""
    reader = open_gguf(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            out[key] = f"[{len(field.data)} items]"
        else:
            out[key] = field.contents()
    return out
