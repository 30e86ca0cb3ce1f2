"""K-quants (Q4_K_M) by llama.cpp's own quantiser, through llama-cpp-python's C API, from an F16 GGUF.

Their block layout is llama.cpp's to define, so this package does not write them itself. Which tensors fell back
to another type is read from llama.cpp's own warnings (captured from its log) and from the written file.
"""

from __future__ import annotations

import re
from pathlib import Path

from .llama_logs import LlamaLogCapture
from .tensor_types import FILE_TYPES, quantized_tensor_records

# llama.cpp's quantiser announces each shape fallback in one warning, printed in two or three pieces.
FALLBACK_WARNING = re.compile(
    r"warning: (?P<name>\S+)\s+- ncols\s+(?P<ncols>\d+) not divisible by\s+(?P<block>\d+)\s+"
    r"\(required for type\s+(?P<requested>\S+)\)\s*(?:\(WARNING: must use F16[^)]*\)\s*)?"
    r"-> falling back to\s+(?P<written>\S+)"
)


def parse_fallback_warnings(text: str) -> dict[str, dict]:
    """{tensor name: {requested, written, reason}} from llama.cpp's quantiser log."""
    return {
        m["name"]: {
            "requested": m["requested"].upper(),
            "written": m["written"].upper(),
            "reason": f"ncols {m['ncols']} not divisible by {m['block']}",
        }
        for m in FALLBACK_WARNING.finditer(text)
    }


def llama_quantize(source: str | Path, out_path: str | Path, out_type: str, threads: int = 0) -> list[dict]:
    """Quantise a GGUF with llama.cpp's quantiser (``threads`` 0: llama.cpp's own choice).

    Returns the per-tensor table of the written file: the types come from the file itself (gguf.GGUFReader),
    what was asked for from llama.cpp's own fallback warnings.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[out_type]
    params.nthread = threads
    with LlamaLogCapture() as capture:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(out_path).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama.cpp could not quantize {source} to {out_type} (code {rc})")
    return quantized_tensor_records(out_path, out_type, parse_fallback_warnings(capture.text))
