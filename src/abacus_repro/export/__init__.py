"""Export: GGUF files for llama.cpp (``minicpm`` architecture), their verification, an Ollama Modelfile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .gguf import LLAMA_QUANTIZED_TYPES, SUPPORTED_TYPES, export_gguf, load_hf_model, write_gguf
from .modelfile import render_modelfile, write_modelfile
from .verify import ExportVerificationError, verify_exports, verify_gguf, verify_settings


def export_all(
    model_dir: str | Path,
    gguf_paths: Sequence[str | Path],
    types: Sequence[str],
    verify_json: str | Path,
    export_settings: Mapping[str, Any],
) -> dict:
    """Write one GGUF per type (paths in the same order as types), then verify them all against the model.

    ``export_settings``: the resolved ``export`` section (its ``verify`` part holds every type's thresholds).

    Files written by this package come first; llama.cpp's K-quants are then made from the F16 file when it is
    among the outputs (the seed's route: convert to F16, then llama-quantize), otherwise from a temporary one.
    """
    if len(gguf_paths) != len(types):
        raise ValueError(f"{len(gguf_paths)} output paths for {len(types)} types")
    model = load_hf_model(model_dir)
    jobs = sorted(zip(types, gguf_paths), key=lambda job: job[0].upper() in LLAMA_QUANTIZED_TYPES)
    f16 = next((path for out_type, path in jobs if out_type.upper() == "F16"), None)
    records = {}
    for out_type, path in jobs:
        source = f16 if out_type.upper() in LLAMA_QUANTIZED_TYPES else None
        records[str(path)] = export_gguf(model_dir, path, out_type, model=model, source=source)
    # The model is handed over: verification replaces its weights by each file's (one copy in memory).
    settings = verify_settings(dict(export_settings))
    return verify_exports(list(gguf_paths), model_dir, verify_json, settings, model=model, tensor_records=records)


__all__ = [
    "SUPPORTED_TYPES",
    "ExportVerificationError",
    "export_all",
    "export_gguf",
    "render_modelfile",
    "verify_exports",
    "verify_gguf",
    "verify_settings",
    "write_gguf",
    "write_modelfile",
]
