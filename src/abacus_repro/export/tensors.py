"""Which of our MiniCPM's weights go into the GGUF, under which names, in which order and layout.

Names come from the ``gguf`` package's own map for llama.cpp's ``minicpm`` architecture (gguf.get_tensor_name_map),
restricted to the tensors this exporter writes: ``token_embd``, ``blk.N.{attn_norm, attn_q, attn_k, attn_v,
attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}``, ``output_norm`` and, only when the projection is not tied,
``output`` (llama.cpp reuses token_embd otherwise). Any other parameter is refused rather than written under a
name llama.cpp's minicpm loader would not read.

llama.cpp's MiniCPM applies RoPE to pairs of *adjacent* head values, Hugging Face's ``rotate_half`` to the two
halves of each head, so the rows of the q and k projections are permuted per head.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import gguf
import numpy as np

from ..errors import InputError

ARCH = "minicpm"

# The tensors of llama.cpp's minicpm architecture that our model has. gguf's map also knows rope_freqs,
# attn_rot_embd and mixture-of-experts tensors for this architecture; our MiniCPM has none, so such a parameter
# means a model this exporter was not written for.
WRITTEN_TENSORS = frozenset(
    {
        gguf.MODEL_TENSOR.TOKEN_EMBD,
        gguf.MODEL_TENSOR.OUTPUT_NORM,
        gguf.MODEL_TENSOR.OUTPUT,
        gguf.MODEL_TENSOR.ATTN_NORM,
        gguf.MODEL_TENSOR.ATTN_Q,
        gguf.MODEL_TENSOR.ATTN_K,
        gguf.MODEL_TENSOR.ATTN_V,
        gguf.MODEL_TENSOR.ATTN_OUT,
        gguf.MODEL_TENSOR.FFN_NORM,
        gguf.MODEL_TENSOR.FFN_GATE,
        gguf.MODEL_TENSOR.FFN_UP,
        gguf.MODEL_TENSOR.FFN_DOWN,
    }
)


def tensor_name_map(n_layers: int) -> gguf.TensorNameMap:
    """gguf's Hugging Face -> GGUF name map for llama.cpp's minicpm architecture with ``n_layers`` blocks."""
    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.MINICPM, n_layers)


def gguf_tensor_name(hf_name: str, name_map: gguf.TensorNameMap) -> str | None:
    """The GGUF name of a Hugging Face parameter, or None for one this exporter does not write."""
    if not hf_name.endswith(".weight"):  # every tensor we write is a weight; the map also matches bare names
        return None
    found = name_map.get_type_and_name(hf_name, try_suffixes=(".weight",))
    if found is None or found[0] not in WRITTEN_TENSORS:
        return None
    return found[1]


def hf_names_by_gguf_name(hf_names: Iterable[str], name_map: gguf.TensorNameMap) -> dict[str, str]:
    """{GGUF name: Hugging Face name} for the given parameters (the way back when reading a GGUF)."""
    by_gguf = {}
    for hf_name in hf_names:
        name = gguf_tensor_name(hf_name, name_map)
        if name is not None:
            by_gguf[name] = hf_name
    return by_gguf


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


def rope_heads(gguf_name: str, config) -> int | None:
    """The number of heads whose rows a q/k projection permutes; None for every other tensor."""
    if gguf_name.endswith("attn_q.weight"):
        return config.num_attention_heads
    if gguf_name.endswith("attn_k.weight"):
        return config.num_key_value_heads
    return None


def export_plan(state_dict: dict, config) -> list[tuple[str, str, tuple[int, ...]]]:
    """(Hugging Face name, GGUF name, shape) of every tensor llama.cpp loads, in file order; nothing converted."""
    tied = bool(getattr(config, "tie_word_embeddings", True))
    name_map = tensor_name_map(config.num_hidden_layers)
    plan = []
    for hf_name in sorted(state_dict, key=_tensor_order):
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when there is no output tensor
        name = gguf_tensor_name(hf_name, name_map)
        if name is None:
            raise InputError(None, f"parameter {hf_name} has no place in llama.cpp's minicpm architecture")
        plan.append((hf_name, name, tuple(int(d) for d in state_dict[hf_name].shape)))
    return plan


def export_array(state_dict: dict, hf_name: str, name: str, config) -> np.ndarray:
    """One tensor as a contiguous float32 array, q/k rows permuted for llama.cpp's RoPE."""
    array = state_dict[hf_name].detach().to("cpu").float().numpy()
    heads = rope_heads(name, config)
    if heads is not None:
        array = rope_rows_to_interleaved(array, heads)
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
