"""Export: GGUF files for llama.cpp (``minicpm`` architecture), their verification, an Ollama Modelfile.

Modules: :mod:`.tensors` (names, order, RoPE layout), :mod:`.tensor_types` (types asked for and written),
:mod:`.vocab` (the tokenizer), :mod:`.writer` (the GGUF writer), :mod:`.quantize` and :mod:`.llama_logs`
(llama.cpp's quantiser and its log), :mod:`.reader` (reading a GGUF back), :mod:`.verify` (llama.cpp against
our model), :mod:`.modelfile`, and :mod:`.stage` (the rules' entry points and export_all).
"""

from __future__ import annotations

from .modelfile import render_modelfile, write_modelfile
from .reader import gguf_metadata
from .stage import export_all
from .tensor_types import SUPPORTED_TYPES
from .verify import ExportVerificationError, type_thresholds, verify_exports, verify_gguf
from .writer import export_gguf, load_hf_model, write_gguf

__all__ = [
    "SUPPORTED_TYPES",
    "ExportVerificationError",
    "export_all",
    "export_gguf",
    "gguf_metadata",
    "load_hf_model",
    "render_modelfile",
    "type_thresholds",
    "verify_exports",
    "verify_gguf",
    "write_gguf",
    "write_modelfile",
]
