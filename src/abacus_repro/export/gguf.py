"""GGUF files for llama.cpp's ``minicpm`` architecture, written with the ``gguf`` package.

What llama.cpp needs (facts learnt from its converter and loader, not code copied from them):

* metadata: ``general.architecture = minicpm`` and the usual ``minicpm.*`` hyper-parameters, plus the three
  MiniCPM scalings: ``embedding_scale`` (= scale_emb), ``residual_scale`` (= scale_depth / sqrt(n_layers)) and
  ``logit_scale`` (= hidden_size / dim_model_base; llama.cpp divides the logits by it);
* tensors ``token_embd``, ``blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
  ffn_down}``, ``output_norm``; no ``output`` when the projection is tied (llama.cpp then reuses token_embd);
* llama.cpp's MiniCPM applies RoPE to pairs of *adjacent* head values, Hugging Face's ``rotate_half`` to the two
  halves of each head, so the rows of the q and k projections are permuted per head;
* the tokenizer as ``gpt2`` (byte-level BPE) with the ``gpt-2`` pre-tokenizer: tokens, token types (control for
  special tokens), merges, special ids, the add-BOS flag and the chat template.

F32 and F16 are written directly, Q8_0 with gguf's own quantiser; K-quants (Q4_K_M) come from llama.cpp's
quantiser applied to an F16 file. Tensors are converted and written one at a time, so a 2.7B export holds the model
plus one tensor in memory, not a second copy of all weights.

Every file comes with a per-tensor record of the type that was asked for and the type that was written: a weight
matrix whose rows do not split into whole blocks (32 values for Q8_0, 256 for K-quants) cannot have that type, and
the writer or llama.cpp falls back to another. Those fallbacks are logged and land in ``verify.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

ARCH = "minicpm"
WRITTEN_TYPES = ("F32", "F16", "Q8_0")
LLAMA_QUANTIZED_TYPES = ("Q4_K_M",)
SUPPORTED_TYPES = WRITTEN_TYPES + LLAMA_QUANTIZED_TYPES

# Hugging Face parameter name (after "model.layers.N.") -> GGUF tensor name (after "blk.N.").
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


# ---------------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------------


def rope_rows_to_interleaved(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder a q/k projection's output rows from rotate_half (halves) to GGML's adjacent-pair RoPE.

    Within each head, HF rotates dimension d with d + head_dim/2; GGML rotates 2i with 2i+1. Row i of the first
    half and row i of the second half therefore become rows 2i and 2i+1.
    """
    rows = weight.shape[0]
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def rope_rows_from_interleaved(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """The inverse of :func:`rope_rows_to_interleaved` (reading a GGUF back into Hugging Face layout)."""
    rows = weight.shape[0]
    head_dim = rows // n_heads
    return weight.reshape(n_heads, head_dim // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensor_name(hf_name: str) -> str | None:
    """The GGUF name of a Hugging Face parameter, or None for one llama.cpp does not use."""
    if hf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[hf_name]
    parts = hf_name.split(".", 3)
    if len(parts) == 4 and parts[0] == "model" and parts[1] == "layers" and parts[3] in LAYER_TENSORS:
        return f"blk.{parts[2]}.{LAYER_TENSORS[parts[3]]}"
    return None


def hf_tensor_name(gguf_name: str) -> str | None:
    """The inverse of :func:`gguf_tensor_name`."""
    for hf, gg in GLOBAL_TENSORS.items():
        if gg == gguf_name:
            return hf
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk":
        for hf_suffix, gg_suffix in LAYER_TENSORS.items():
            if gg_suffix == parts[2]:
                return f"model.layers.{parts[1]}.{hf_suffix}"
    return None


def export_plan(state_dict: dict, config) -> list[tuple[str, str, tuple[int, ...]]]:
    """(Hugging Face name, GGUF name, shape) of every tensor llama.cpp loads, in file order; nothing converted."""
    tied = bool(getattr(config, "tie_word_embeddings", True))
    plan = []
    for hf_name in sorted(state_dict, key=_tensor_order):
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when there is no output tensor
        name = gguf_tensor_name(hf_name)
        if name is None:
            raise InputError(None, f"parameter {hf_name} has no place in llama.cpp's minicpm architecture")
        plan.append((hf_name, name, tuple(int(d) for d in state_dict[hf_name].shape)))
    return plan


def export_array(state_dict: dict, hf_name: str, name: str, config) -> np.ndarray:
    """One tensor as a contiguous float32 array, q/k rows permuted for llama.cpp's RoPE."""
    array = state_dict[hf_name].detach().to("cpu").float().numpy()
    if name.endswith("attn_q.weight"):
        array = rope_rows_to_interleaved(array, config.num_attention_heads)
    elif name.endswith("attn_k.weight"):
        array = rope_rows_to_interleaved(array, config.num_key_value_heads)
    return np.ascontiguousarray(array)


def export_tensors(state_dict: dict, config) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for every tensor llama.cpp loads, converted one at a time."""
    for hf_name, name, _shape in export_plan(state_dict, config):
        yield name, export_array(state_dict, hf_name, name, config)


def _tensor_order(hf_name: str):
    # token_embd first, then layers in numeric order, then the final norm (the order llama.cpp's converter uses).
    if hf_name == "model.embed_tokens.weight":
        return (0, 0, hf_name)
    parts = hf_name.split(".")
    if len(parts) > 3 and parts[1] == "layers":
        return (1, int(parts[2]), hf_name)
    return (2, 0, hf_name)


# ---------------------------------------------------------------------------------------------------------------
# Tensor types: asked for and written
# ---------------------------------------------------------------------------------------------------------------

FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15}  # llama.cpp's LLAMA_FTYPE_* values
FILE_TYPE_NAMES = {value: name for name, value in FILE_TYPES.items()}
K_QUANT_BLOCK = 256  # values per block of every K-quant (ggml's QK_K)
K_TYPES = frozenset({"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"})


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
        block = _block_size("Q8_0")
        if shape[-1] % block:
            return tensor_record(name, shape, "Q8_0", "F16", f"ncols {shape[-1]} not divisible by {block}")
        return tensor_record(name, shape, "Q8_0", "Q8_0")
    raise ValueError(f"type {out_type} is not written directly")


def _block_size(type_name: str) -> int:
    import gguf

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0]


def _tensor_nbytes(shape: tuple[int, ...], type_name: str) -> int:
    import gguf

    block, block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    return math.prod(shape) // block * block_bytes


def _encode(array: np.ndarray, type_name: str) -> np.ndarray:
    """The bytes of one tensor in a type this writer produces (F32, F16 or gguf's own Q8_0 quantiser)."""
    import gguf

    if type_name == "F32":
        return array.astype(np.float32)
    if type_name == "F16":
        return array.astype(np.float16)
    if type_name == "Q8_0":
        # In row chunks: gguf's numpy quantiser makes several float temporaries the size of its input (GBs for a
        # 2.7B model's embedding); blocks never cross rows, so the bytes are the same.
        qtype = gguf.GGMLQuantizationType.Q8_0
        rows_per_chunk = max(1, QUANTIZE_CHUNK_VALUES // max(1, array.shape[-1]))
        if array.ndim != 2 or array.shape[0] <= rows_per_chunk:
            return gguf.quants.quantize(array, qtype)
        out = np.empty(gguf.quants.quant_shape_to_byte_shape(array.shape, qtype), dtype=np.uint8)
        for start in range(0, array.shape[0], rows_per_chunk):
            stop = start + rows_per_chunk
            out[start:stop] = gguf.quants.quantize(array[start:stop], qtype)
        return out
    raise ValueError(f"type {type_name} is not written directly")


QUANTIZE_CHUNK_VALUES = 1 << 22  # values per chunk for our Q8_0 quantiser (16 MiB of float32)


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


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------------


def read_tokenizer(model_dir: Path) -> dict:
    """What the GGUF needs from tokenizer.json / tokenizer_config.json.

    Two kinds are supported, told apart by tokenizer.json itself:

    * ``gpt2``: byte-level BPE (our tokenizer stage's): tokens, merges, the ``gpt-2`` pre-tokenizer;
    * ``llama``: SentencePiece-style BPE (MiniCPM's own tokenizer, so the paper-scale checkpoint): pieces with
      ``▁`` for spaces and ``<0xNN>`` byte fallback. llama.cpp's SentencePiece tokenizer merges by piece score;
      SentencePiece BPE scores are the pieces' merge ranks, which Hugging Face keeps as the vocabulary order, so
      a normal piece's score is minus its rank (the values SentencePiece itself stores: 0, -1, -2, ...).
    """
    from tokenizers import Tokenizer

    tok_path = model_dir / "tokenizer.json"
    if not tok_path.exists():
        raise InputError(tok_path, "tokenizer file not found")
    data = json.loads(tok_path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") == "BPE" and _is_byte_level(data.get("pre_tokenizer")):
        kind = "gpt2"
    elif model.get("type") == "BPE" and model.get("byte_fallback") and _uses_metaspace(data):
        kind = "llama"
    else:
        raise InputError(
            tok_path,
            "only byte-level BPE (GPT-2 style) or SentencePiece BPE (byte fallback, ▁ for spaces) tokenizers "
            "can be exported to GGUF here",
        )
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}

    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in data.get("added_tokens", [])}
    for content, token in added.items():
        vocab[content] = token["id"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    def special_id(key: str) -> int | None:
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return vocab.get(value) if value is not None else None

    # Whether encoding adds BOS / EOS is read from the tokenizer's behaviour, not from a flag that may disagree.
    probe = Tokenizer.from_str(tok_path.read_text(encoding="utf-8")).encode("a", add_special_tokens=True).ids
    bos, eos = special_id("bos_token"), special_id("eos_token")
    chat_template = config.get("chat_template")
    jinja = model_dir / "chat_template.jinja"
    if chat_template is None and jinja.exists():
        chat_template = jinja.read_text(encoding="utf-8")
    return {
        "kind": kind,
        "vocab": vocab,
        "added": added,
        "merges": merges,
        "bos": bos,
        "eos": eos,
        "unk": special_id("unk_token") if special_id("unk_token") is not None else vocab.get(model.get("unk_token")),
        "pad": special_id("pad_token"),
        "add_bos": bool(probe) and bos is not None and probe[0] == bos,
        "add_eos": bool(probe) and eos is not None and probe[-1] == eos,
        "add_space_prefix": kind == "llama" and _adds_space_prefix(_effective_tokenizer_json(model_dir), tok_path),
        "chat_template": chat_template,
    }


def _is_byte_level(pre_tokenizer) -> bool:
    if not pre_tokenizer:
        return False
    if pre_tokenizer.get("type") == "ByteLevel":
        return True
    if pre_tokenizer.get("type") == "Sequence":
        return any(_is_byte_level(p) for p in pre_tokenizer.get("pretokenizers", []))
    return False


def _components(spec: dict | None, key: str) -> list[dict]:
    """A normalizer / pre-tokenizer and the members of a Sequence of them."""
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [c for member in spec.get(key, []) for c in _components(member, key)]
    return [spec]


def _uses_metaspace(data: dict) -> bool:
    """Spaces become ``▁`` (SentencePiece): a Metaspace pre-tokenizer or a normalizer replacing " " by "▁"."""
    if any(c.get("type") == "Metaspace" for c in _components(data.get("pre_tokenizer"), "pretokenizers")):
        return True
    return any(
        c.get("type") == "Replace" and c.get("content") == "▁"
        for c in _components(data.get("normalizer"), "normalizers")
    )


def _effective_tokenizer_json(model_dir: Path) -> dict:
    """The tokenizer as transformers runs it, which can differ from tokenizer.json: transformers 5's
    LlamaTokenizer rebuilds its Metaspace pre-tokenizer from the ``legacy`` flag of tokenizer_config.json
    (absent = False = prepend only at the start) whatever the file says."""
    from transformers import AutoTokenizer

    return json.loads(AutoTokenizer.from_pretrained(str(model_dir)).backend_tokenizer.to_str())


def _adds_space_prefix(data: dict, tok_path: Path) -> bool:
    """SentencePiece's dummy prefix: whether a "▁" is put before the text.

    llama.cpp adds it at the start and after every special token (Hugging Face's Metaspace ``always``, the legacy
    Llama behaviour); Hugging Face's ``first`` adds it only at the start, which llama.cpp cannot express.
    """
    for c in _components(data.get("pre_tokenizer"), "pretokenizers"):
        if c.get("type") == "Metaspace":
            scheme = c.get("prepend_scheme", "always" if c.get("add_prefix_space", True) else "never")
            if scheme == "first":
                log.warning(
                    "%s: Metaspace prepend_scheme 'first'; llama.cpp also puts '▁' after special tokens, "
                    "so text that follows one may tokenize differently (verification checks it)",
                    tok_path,
                )
            return scheme in ("always", "first")
    return any(
        c.get("type") == "Prepend" and c.get("prepend") == "▁"
        for c in _components(data.get("normalizer"), "normalizers")
    )


BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def token_table_with_scores(tokenizer: dict, n_vocab: int) -> tuple[list[str], list[int], list[float]]:
    """Tokens, types and SentencePiece scores for ids 0..n_vocab-1.

    Types: added special tokens CONTROL, other added tokens USER_DEFINED, the unknown token UNKNOWN, and for
    SentencePiece vocabularies the ``<0xNN>`` pieces BYTE. Scores: minus the rank of each normal piece in id
    order (SentencePiece BPE's own values), 0 for the rest; gpt2 files carry no scores.
    """
    import gguf

    by_id = {i: t for t, i in tokenizer["vocab"].items()}
    if by_id and max(by_id) >= n_vocab:
        raise InputError(None, f"tokenizer has id {max(by_id)} but the model's vocabulary is {n_vocab}")
    sentencepiece = tokenizer.get("kind") == "llama"
    tokens, types, scores = [], [], []
    rank = 0
    for i in range(n_vocab):
        token = by_id.get(i)
        score = 0.0
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i == tokenizer.get("unk") and sentencepiece:  # an added token in Hugging Face, UNKNOWN for SentencePiece
            tokens.append(token)
            types.append(gguf.TokenType.UNKNOWN)
        elif token in tokenizer["added"]:
            tokens.append(token)
            special = tokenizer["added"][token].get("special", False)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif sentencepiece and BYTE_PIECE.fullmatch(token):
            tokens.append(token)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
            score = -float(rank)
            rank += 1
        scores.append(score)
    return tokens, types, scores


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def load_hf_model(model_dir: str | Path):
    """Our MiniCPM from a Hugging Face directory, in float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    import abacus_repro.model  # noqa: F401  (registers the minicpm Auto classes)

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise InputError(model_dir, "not a model directory (config.json missing)")
    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def write_gguf(model_dir: str | Path, out_path: str | Path, out_type: str = "F16", model=None) -> Path:
    """Write ``model_dir`` (our MiniCPM + its tokenizer) as a GGUF of type ``out_type``."""
    export_gguf(model_dir, out_path, out_type, model=model)
    return Path(out_path)


def export_gguf(
    model_dir: str | Path,
    out_path: str | Path,
    out_type: str = "F16",
    model=None,
    source: str | Path | None = None,
) -> list[dict]:
    """Write the GGUF and return its per-tensor table: type asked for, type written, and why they differ.

    ``source``: for K-quants, an F16 GGUF of the same model already written (saves writing a temporary one).
    """
    out_type = out_type.upper()
    if out_type not in SUPPORTED_TYPES:
        raise InputError(None, f"export type {out_type!r}: allowed types are {', '.join(SUPPORTED_TYPES)}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_type in LLAMA_QUANTIZED_TYPES:
        # K-quants: llama.cpp's own quantiser from an F16 file (their block layout is llama.cpp's to define).
        if source is not None:
            records = llama_quantize(source, out_path, out_type)
        else:
            with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
                f16 = write_gguf(model_dir, Path(tmp) / "model-F16.gguf", "F16", model=model)
                records = llama_quantize(f16, out_path, out_type)
    else:
        records = _write_direct(Path(model_dir), out_path, out_type, model)
    log_fallbacks(out_path, out_type, records)
    return records


def _write_direct(model_dir: Path, out_path: Path, out_type: str, model) -> list[dict]:
    """F32 / F16 / Q8_0 with the gguf package, streaming: tensor infos first, then one tensor at a time."""
    import gguf

    model = model if model is not None else load_hf_model(model_dir)
    config = model.config
    tokenizer = read_tokenizer(model_dir)
    state_dict = model.state_dict()
    plan = export_plan(state_dict, config)
    records = [plan_written_type(name, shape, out_type) for _hf, name, shape in plan]

    tmp_path = out_path.with_name(out_path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp_path), ARCH)
    _add_model_metadata(writer, model_dir.name, config, out_type)
    n_tokens = _add_tokenizer_metadata(writer, tokenizer, config.vocab_size)
    for (_hf, name, shape), record in zip(plan, records):
        written = record["written"]
        raw = gguf.GGMLQuantizationType[written] if written not in ("F32", "F16") else None
        dtype = np.float16 if written == "F16" else np.float32
        writer.add_tensor_info(name, shape, np.dtype(dtype), _tensor_nbytes(shape, written), raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for (hf_name, name, _shape), record in zip(plan, records):
        writer.write_tensor_data(_encode(export_array(state_dict, hf_name, name, config), record["written"]))
    writer.close()
    os.replace(tmp_path, out_path)
    log.info(
        "wrote %s: %s, %d tensors, %d tokens, %.1f MiB",
        out_path,
        out_type,
        len(plan),
        n_tokens,
        out_path.stat().st_size / 2**20,
    )
    return records


def _add_model_metadata(writer, name: str, config, out_type: str) -> None:
    import gguf

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


def _add_tokenizer_metadata(writer, tokenizer: dict, n_vocab: int) -> int:
    tokens, types, scores = token_table_with_scores(tokenizer, n_vocab)
    if tokenizer["kind"] == "llama":
        # llama.cpp's SentencePiece tokenizer: merges by score, ▁ for spaces, byte fallback.
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_add_space_prefix(tokenizer["add_space_prefix"])
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(tokenizer["merges"])
    for key, adder in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("unk", writer.add_unk_token_id),
        ("pad", writer.add_pad_token_id),
    ):
        if tokenizer[key] is not None:
            adder(tokenizer[key])
    writer.add_add_bos_token(tokenizer["add_bos"])
    writer.add_add_eos_token(tokenizer["add_eos"])
    if tokenizer["chat_template"]:
        writer.add_chat_template(tokenizer["chat_template"])
    return len(tokens)


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp: its log, its quantiser
# ---------------------------------------------------------------------------------------------------------------

_LOG_CALLBACK = None
_LOG_CAPTURE: list[str] | None = None


def route_llama_logs() -> None:
    """Send llama.cpp's native log lines to Python logging (DEBUG), decoded leniently.

    llama.cpp may split a UTF-8 character across two log calls; llama-cpp-python's default callback then
    raises inside a ctypes callback. Here partial bytes are replaced instead.
    """
    global _LOG_CALLBACK
    import llama_cpp

    if _LOG_CALLBACK is not None:
        return
    native = logging.getLogger("llama_cpp.native")

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):
        decoded = text.decode("utf-8", errors="replace")
        if _LOG_CAPTURE is not None:
            _LOG_CAPTURE.append(decoded)
        native.debug(decoded.rstrip("\n"))

    _LOG_CALLBACK = _callback  # keep a reference: ctypes does not, and a collected callback crashes
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


@contextlib.contextmanager
def capture_llama_logs() -> Iterator[list[str]]:
    """Collect llama.cpp's log text while the block runs (it still reaches Python logging as well)."""
    global _LOG_CAPTURE
    route_llama_logs()
    previous, _LOG_CAPTURE = _LOG_CAPTURE, []
    try:
        yield _LOG_CAPTURE
    finally:
        _LOG_CAPTURE = previous


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
    """Quantise a GGUF with llama.cpp's quantiser (through llama-cpp-python's C API).

    Returns the per-tensor table of the written file: the types come from the file itself (gguf.GGUFReader),
    what was asked for from llama.cpp's own fallback warnings.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[out_type]
    params.nthread = threads
    with capture_llama_logs() as lines:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(out_path).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama.cpp could not quantize {source} to {out_type} (code {rc})")
    return quantized_tensor_records(out_path, out_type, parse_fallback_warnings("".join(lines)))


def quantized_tensor_records(path: str | Path, out_type: str, warned: dict[str, dict] | None = None) -> list[dict]:
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


def open_gguf(path_or_reader):
    """A gguf.GGUFReader for a path, or the reader given. Reading parses every metadata field in Python (the
    token list alone is ~120k fields at 2.7B), so callers that look at one file several times share a reader."""
    import gguf

    if isinstance(path_or_reader, gguf.GGUFReader):
        return path_or_reader
    return gguf.GGUFReader(str(path_or_reader))


def gguf_tensor_types(path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor name: (shape as rows, columns; GGML type name)} in file order (``path``: a path or a reader)."""
    import gguf

    reader = open_gguf(path)
    return {
        t.name: (tuple(int(d) for d in reversed(t.shape.tolist())), gguf.GGMLQuantizationType(t.tensor_type).name)
        for t in reader.tensors
    }


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
            block = K_QUANT_BLOCK if k_quant else _block_size(out_type)
            reason = f"ncols {shape[-1]} not divisible by {block}" if shape[-1] % block else f"not a {out_type} type"
            records.append(tensor_record(name, shape, None if k_quant else out_type, type_name, reason))
    return records


def iter_gguf_weights(path, config) -> Iterator[tuple[str, object]]:
    """(Hugging Face name, float32 torch tensor) for each weight in the file, dequantised one at a time."""
    import gguf
    import torch

    reader = open_gguf(path)
    for tensor in reader.tensors:
        hf_name = hf_tensor_name(tensor.name)
        if hf_name is None:
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        data = np.asarray(tensor.data)
        if tensor.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            array = data.astype(np.float32).reshape(shape)
        else:
            array = gguf.quants.dequantize(data, tensor.tensor_type).astype(np.float32).reshape(shape)
        if tensor.name.endswith("attn_q.weight"):
            array = rope_rows_from_interleaved(array, config.num_attention_heads)
        elif tensor.name.endswith("attn_k.weight"):
            array = rope_rows_from_interleaved(array, config.num_key_value_heads)
        yield hf_name, torch.from_numpy(np.ascontiguousarray(array))


def gguf_metadata(path) -> dict:
    """Scalar and string metadata of a GGUF (arrays such as the token list are summarised by length)."""
    import gguf

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
