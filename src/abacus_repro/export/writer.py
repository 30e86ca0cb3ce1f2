"""GGUF files for llama.cpp's ``minicpm`` architecture, written with the ``gguf`` package.

What llama.cpp needs (facts learnt from its converter and loader, not code copied from them): metadata
``general.architecture = minicpm`` and the usual ``minicpm.*`` hyper-parameters, plus the three MiniCPM scalings
(below); the tensors of :mod:`.tensors`; the tokenizer of :mod:`.vocab`.

F32, F16 and Q8_0 are written here, streaming: tensor infos first, then one tensor converted and written at a
time, so a 2.7B export holds the model plus one tensor in memory, not a second copy of all weights. K-quants
(Q4_K_M) come from llama.cpp's quantiser applied to an F16 file (:mod:`.quantize`).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import gguf
import numpy as np

from ..errors import InputError
from .quantize import llama_quantize
from .tensor_types import (
    FILE_TYPES,
    LLAMA_QUANTIZED_TYPES,
    SUPPORTED_TYPES,
    encode,
    log_fallbacks,
    plan_written_type,
    tensor_nbytes,
)
from .tensors import ARCH, export_array, export_plan
from .vocab import add_tokenizer_metadata, read_vocabulary

log = logging.getLogger(__name__)


def load_hf_model(model_dir: str | Path):
    """Our MiniCPM from a Hugging Face directory, in float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    import abacus_repro.model  # noqa: F401  (registers the minicpm Auto classes)

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise InputError(model_dir, "not a model directory (config.json missing)")
    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def write_gguf(model_dir: str | Path, out_path: str | Path, out_type: str, model=None) -> Path:
    """Write ``model_dir`` (our MiniCPM + its tokenizer) as a GGUF of type ``out_type``; returns its path."""
    export_gguf(model_dir, out_path, out_type, model=model)
    return Path(out_path)


def export_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    out_type: str,
    model=None,
    source: str | Path | None = None,
) -> list[dict]:
    """Write the GGUF and return its per-tensor table: type asked for, type written, and why they differ.

    ``model``: the model of ``model_dir`` already loaded (else it is loaded here). ``source``: for K-quants, an
    F16 GGUF of the same model already written (saves writing a temporary one).
    """
    out_type = out_type.upper()
    if out_type not in SUPPORTED_TYPES:
        raise InputError(None, f"export type {out_type!r}: allowed types are {', '.join(SUPPORTED_TYPES)}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_type in LLAMA_QUANTIZED_TYPES:
        records = _write_k_quant(Path(model_dir), out_path, out_type, model, source)
    else:
        records = _write_direct(Path(model_dir), out_path, out_type, model)
    log_fallbacks(out_path, out_type, records)
    return records


def _write_k_quant(model_dir: Path, out_path: Path, out_type: str, model, source: str | Path | None) -> list[dict]:
    """K-quants: llama.cpp's own quantiser from an F16 file (their block layout is llama.cpp's to define)."""
    if source is not None:
        return llama_quantize(source, out_path, out_type)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        f16 = write_gguf(model_dir, Path(tmp) / "model-F16.gguf", "F16", model=model)
        return llama_quantize(f16, out_path, out_type)


def _write_direct(model_dir: Path, out_path: Path, out_type: str, model) -> list[dict]:
    """F32 / F16 / Q8_0 with the gguf package, streaming: tensor infos first, then one tensor at a time."""
    model = model if model is not None else load_hf_model(model_dir)
    config = model.config
    vocabulary = read_vocabulary(model_dir, config.vocab_size)
    state_dict = model.state_dict()
    plan = export_plan(state_dict, config)
    records = [plan_written_type(name, shape, out_type) for _hf, name, shape in plan]

    tmp_path = out_path.with_name(out_path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp_path), ARCH)
    add_model_metadata(writer, model_dir.name, config, out_type)
    n_tokens = add_tokenizer_metadata(writer, vocabulary, config.vocab_size)
    for (_hf, name, shape), record in zip(plan, records):
        written = record["written"]
        raw = gguf.GGMLQuantizationType[written] if written not in ("F32", "F16") else None
        dtype = np.float16 if written == "F16" else np.float32
        writer.add_tensor_info(name, shape, np.dtype(dtype), tensor_nbytes(shape, written), raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for (hf_name, name, _shape), record in zip(plan, records):
        writer.write_tensor_data(encode(export_array(state_dict, hf_name, name, config), record["written"]))
    writer.close()
    os.replace(tmp_path, out_path)
    size_mib = out_path.stat().st_size / 2**20
    log.info("wrote %s: %s, %d tensors, %d tokens, %.1f MiB", out_path, out_type, len(plan), n_tokens, size_mib)
    return records


def add_model_metadata(writer: gguf.GGUFWriter, name: str, config, out_type: str) -> None:
    """General and ``minicpm.*`` keys: hyper-parameters and MiniCPM's three scalings.

    The scalings are ours to compute, gguf has no MiniCPM helper: ``embedding_scale`` = scale_emb,
    ``residual_scale`` = scale_depth / sqrt(n_layers) and ``logit_scale`` = hidden_size / dim_model_base
    (llama.cpp divides the logits by it), which is how our modeling.py applies scale_depth and dim_model_base.
    """
    writer.add_name(name)
    writer.add_file_type(FILE_TYPES[out_type])
    if out_type not in ("F32", "F16"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    head_dim = config.hidden_size // config.num_attention_heads
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_embedding_scale(float(config.scale_emb))
    writer.add_residual_scale(float(config.scale_depth) / math.sqrt(config.num_hidden_layers))
    writer.add_logit_scale(config.hidden_size / float(config.dim_model_base))
