"""The GGML type of each tensor: the one asked for, the one written, and the bytes of the types we write.

F32 and F16 are written directly, Q8_0 with gguf's own quantiser; K-quants (Q4_K_M) come from llama.cpp's
quantiser applied to an F16 file. A weight matrix whose rows do not split into whole blocks (32 values for Q8_0,
256 for K-quants) cannot have that type, and the writer or llama.cpp falls back to another. Every file comes with
a per-tensor record of both types; the fallbacks are logged and land in ``verify.json``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import gguf
import numpy as np

from .reader import gguf_tensor_types

log = logging.getLogger(__name__)

WRITTEN_TYPES = ("F32", "F16", "Q8_0")
LLAMA_QUANTIZED_TYPES = ("Q4_K_M",)
SUPPORTED_TYPES = WRITTEN_TYPES + LLAMA_QUANTIZED_TYPES
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15}  # llama.cpp's LLAMA_FTYPE_* values
FILE_TYPE_NAMES = {value: name for name, value in FILE_TYPES.items()}
K_QUANT_BLOCK = 256  # values per block of every K-quant (ggml's QK_K)
K_TYPES = frozenset({"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"})
QUANTIZE_CHUNK_VALUES = 1 << 22  # values per chunk for our Q8_0 quantiser (16 MiB of float32)


def nominal_types(out_type: str) -> frozenset[str]:
    """The GGML types a weight matrix of an ``out_type`` file is meant to have; any other type is a fallback.

    Q4_K_M is llama.cpp's mixture: mostly Q4_K, with Q6_K for the output projection and some attn_v / ffn_down.
    """
    if out_type in LLAMA_QUANTIZED_TYPES:
        return K_TYPES
    return frozenset({out_type})


def tensor_record(name: str, shape, requested: str | None, written: str, reason: str | None = None) -> dict:
    """One row of the per-tensor type table (``shape`` as Hugging Face has it: rows, columns)."""
    return {
        "name": name,
        "shape": [int(d) for d in shape],
        "requested": requested,
        "written": written,
        "fallback": requested != written,
        "reason": reason,
    }


def plan_written_type(name: str, shape: tuple[int, ...], out_type: str) -> dict:
    """The type this writer gives one tensor of an F32/F16/Q8_0 file.

    1-D tensors (the norms) stay F32 in every file, as llama.cpp's converter keeps them: that is the request, not
    a fallback. Q8_0 needs rows in whole 32-value blocks; a matrix without them is stored as F16, which is what
    llama.cpp's quantiser does too.
    """
    if len(shape) == 1 or out_type == "F32":
        return tensor_record(name, shape, "F32", "F32")
    if out_type == "F16":
        return tensor_record(name, shape, "F16", "F16")
    if out_type == "Q8_0":
        block = block_size("Q8_0")
        if shape[-1] % block:
            return tensor_record(name, shape, "Q8_0", "F16", f"ncols {shape[-1]} not divisible by {block}")
        return tensor_record(name, shape, "Q8_0", "Q8_0")
    raise ValueError(f"type {out_type} is not written directly")


def block_size(type_name: str) -> int:
    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0]


def tensor_nbytes(shape: tuple[int, ...], type_name: str) -> int:
    block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    return math.prod(shape) // block * block_bytes


def encode(array: np.ndarray, type_name: str) -> np.ndarray:
    """The bytes of one tensor in a type this writer produces (F32, F16 or gguf's own Q8_0 quantiser)."""
    if type_name == "F32":
        return array.astype(np.float32)
    if type_name == "F16":
        return array.astype(np.float16)
    if type_name == "Q8_0":
        return _quantize_q8_0(array)
    raise ValueError(f"type {type_name} is not written directly")


def _quantize_q8_0(array: np.ndarray) -> np.ndarray:
    """gguf's Q8_0 quantiser in row chunks: it makes several float temporaries the size of its input (GBs for a
    2.7B model's embedding); blocks never cross rows, so the bytes are the same."""
    qtype = gguf.GGMLQuantizationType.Q8_0
    rows_per_chunk = max(1, QUANTIZE_CHUNK_VALUES // max(1, array.shape[-1]))
    if array.ndim != 2 or array.shape[0] <= rows_per_chunk:
        return gguf.quants.quantize(array, qtype)
    out = np.empty(gguf.quants.quant_shape_to_byte_shape(array.shape, qtype), dtype=np.uint8)
    for start in range(0, array.shape[0], rows_per_chunk):
        stop = start + rows_per_chunk
        out[start:stop] = gguf.quants.quantize(array[start:stop], qtype)
    return out


def log_fallbacks(path: str | Path, out_type: str, records: list[dict]) -> None:
    """One warning per file that had fallbacks (with counts per change), one line per tensor at INFO."""
    fallbacks = [r for r in records if r["fallback"]]
    if not fallbacks:
        return
    matrices = sum(1 for r in records if len(r["shape"]) > 1)
    changes = Counter(f"{r['requested']}->{r['written']}" for r in fallbacks)
    log.warning(
        "%s (%s): %d of %d weight matrices fell back to another type because of their shape (%s); "
        "per tensor in verify.json",
        Path(path).name,
        out_type,
        len(fallbacks),
        matrices,
        ", ".join(f"{change} x{n}" for change, n in sorted(changes.items())),
    )
    for r in fallbacks:
        log.info("  %s %s: asked %s, written %s (%s)", r["name"], r["shape"], r["requested"], r["written"], r["reason"])


def quantized_tensor_records(path, out_type: str, warned: dict[str, dict] | None = None) -> list[dict]:
    """The per-tensor table of a K-quant file: written types read back, requests from llama.cpp's warnings.

    One fallback llama.cpp makes silently: the output projection (token_embd when tied) is Q6_K in Q4_K_M, and
    Q8_0 when its rows are not whole 256-value blocks (learnt from llama.cpp's llama-quant.cpp). A matrix that is
    not a K-quant for no stated reason is still flagged, with requested left unknown.
    """
    warned = warned or {}
    written = gguf_tensor_types(path)
    has_output = "output.weight" in written
    records = []
    for name, (shape, type_name) in written.items():
        if name in warned:
            info = warned[name]
            records.append(tensor_record(name, shape, info["requested"], type_name, info["reason"]))
            continue
        is_output = name == "output.weight" or (name == "token_embd.weight" and not has_output)
        if len(shape) == 1 or type_name in nominal_types(out_type):
            records.append(tensor_record(name, shape, type_name, type_name))
        elif is_output and type_name == "Q8_0" and shape[-1] % K_QUANT_BLOCK:
            reason = f"llama.cpp's output-tensor rule: ncols {shape[-1]} not divisible by {K_QUANT_BLOCK}"
            records.append(tensor_record(name, shape, "Q6_K", type_name, reason))
        else:
            records.append(tensor_record(name, shape, None, type_name, f"not a {out_type} type; no reason logged"))
    return records


def file_tensor_records(path, out_type: str) -> list[dict]:
    """The per-tensor table of any GGUF of ours, judged from the file alone (for `export verify` on a file).

    A weight matrix whose type is not the file's nominal type counts as a fallback; requested is the nominal one.
    """
    records = []
    for name, (shape, type_name) in gguf_tensor_types(path).items():
        if len(shape) == 1 or type_name in nominal_types(out_type):
            records.append(tensor_record(name, shape, type_name, type_name))
        else:
            k_quant = out_type in LLAMA_QUANTIZED_TYPES
            block = K_QUANT_BLOCK if k_quant else block_size(out_type)
            reason = f"ncols {shape[-1]} not divisible by {block}" if shape[-1] % block else f"not a {out_type} type"
            records.append(tensor_record(name, shape, None if k_quant else out_type, type_name, reason))
    return records
