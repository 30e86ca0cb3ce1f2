"""Document-aware attention for packed rows without a (T, T) mask: variable-length ("varlen") attention.

A packed batch (B, T) is flattened to B*T tokens cut into segments: every document (and every padding run)
of every row is one segment, found where the position ids restart at 0 or a row begins. Each segment gets
plain causal attention over itself, which is exactly the block attention mask, without materialising it.

Kernels, chosen per call by :func:`resolve_varlen_kernel`:

* ``flash_attn``: ``flash_attn.flash_attn_varlen_func`` (the flash-attn package), CUDA, fp16/bf16.
* ``torch``: ``torch.nn.attention.varlen.varlen_attn`` (flash attention inside PyTorch >= 2.10), CUDA,
  fp16/bf16. No extra package to build.
* ``reference``: one causal SDPA call per segment. Exact in any dtype on any device; the CPU path and the
  yardstick the GPU kernels are tested against.

Segments come from ``position_ids`` (the Hugging Face convention for padding-free packing, so a collator that
only emits restarting positions works) or from ``document_ids`` when given.

Saved model directories carry a copy of this file (see modeling.py), so it imports only the standard library,
torch and transformers; the flash kernels stay optional imports.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

KERNELS = ("flash_attn", "torch", "reference")
PACKED_ATTENTION = ("block_mask", "varlen")
_FLASH_DTYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class VarlenSegments:
    """Segment layout of a flattened packed batch: boundaries in the B*T token axis, longest segment."""

    cu_seqlens: torch.Tensor  # int32 (n_segments + 1,), starts at 0, ends at B*T
    max_seqlen: int
    kernel: str


def segment_starts_from_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T): True where a segment starts (position 0, or the first token of a row)."""
    if position_ids.dim() != 2:
        raise ValueError(f"position_ids must be (batch, seq_len), got shape {tuple(position_ids.shape)}")
    starts = position_ids == 0
    starts[:, 0] = True
    return starts


def segment_starts_from_documents(document_ids: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T): True where the document id changes, and at every row start."""
    if document_ids.dim() != 2:
        raise ValueError(f"document_ids must be (batch, seq_len), got shape {tuple(document_ids.shape)}")
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    return starts


def cu_seqlens_from_starts(starts: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cumulative segment boundaries (int32, as the flash kernels want) and the longest segment's length."""
    flat = starts.reshape(-1)
    total = flat.numel()
    begin = torch.nonzero(flat, as_tuple=False).flatten()
    end = torch.tensor([total], device=flat.device, dtype=begin.dtype)
    cu_seqlens = torch.cat([begin, end]).to(torch.int32)
    max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max().item()) if total else 0
    return cu_seqlens, max_seqlen


@cache
def _optional(module: str, name: str):
    """``module.name``, or None where it is not installed (flash-attn on CPU machines and in CI)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _flash_attn_varlen():
    return _optional("flash_attn", "flash_attn_varlen_func")


def _torch_varlen():
    return _optional("torch.nn.attention.varlen", "varlen_attn")


def available_kernels(device: torch.device, dtype: torch.dtype) -> list[str]:
    """Kernels that can run for this device and dtype, fastest first."""
    kernels = []
    if device.type == "cuda" and dtype in _FLASH_DTYPES:
        if _flash_attn_varlen() is not None:
            kernels.append("flash_attn")
        if _torch_varlen() is not None:
            kernels.append("torch")
    kernels.append("reference")
    return kernels


_warned: set[tuple[str, str]] = set()


def compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype attention really runs in: autocast's (bf16 mixed precision keeps fp32 weights) where enabled."""
    try:
        enabled = torch.is_autocast_enabled(device.type)
    except RuntimeError:  # a device type autocast does not know (meta): no autocast there
        return dtype
    return torch.get_autocast_dtype(device.type) if enabled else dtype


def resolve_varlen_kernel(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """The kernel to use: ``auto`` takes the fastest available; a named one must be available."""
    available = available_kernels(device, dtype)
    if requested == "auto":
        kernel = available[0]
        if kernel == "reference" and device.type == "cuda" and (device.type, str(dtype)) not in _warned:
            # Exact but one SDPA call per document: a GPU run in fp32 or without a flash kernel is slow.
            _warned.add((device.type, str(dtype)))
            log.warning("varlen attention on %s in %s uses the per-document reference kernel", device, dtype)
        return kernel
    if requested not in KERNELS:
        raise ValueError(f"unknown varlen kernel {requested!r}; choose one of auto, {', '.join(KERNELS)}")
    if requested not in available:
        raise RuntimeError(
            f"varlen kernel {requested!r} cannot run on {device.type} in {dtype}; available: {available} "
            "(flash kernels need CUDA and fp16/bf16; flash_attn needs the flash-attn package)"
        )
    return requested


def varlen_segments(
    position_ids: torch.Tensor | None, document_ids: torch.Tensor | None, kernel: str
) -> VarlenSegments:
    """Segments from document ids when given (exact boundaries), else from restarting position ids."""
    if document_ids is not None:
        starts = segment_starts_from_documents(document_ids)
    elif position_ids is not None:
        starts = segment_starts_from_positions(position_ids)
    else:
        raise ValueError("varlen attention needs document_ids or per-document position_ids")
    cu_seqlens, max_seqlen = cu_seqlens_from_starts(starts)
    return VarlenSegments(cu_seqlens=cu_seqlens, max_seqlen=max_seqlen, kernel=kernel)


def _reference_varlen(q, k, v, cu_seqlens, dropout_p: float) -> torch.Tensor:
    """q (N, Hq, D), k/v (N, Hkv, D): causal SDPA per segment, key/value heads shared across query groups."""
    repeat = q.shape[1] // k.shape[1]
    if repeat > 1:
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for begin, end in pairwise(bounds):
        # (1, H, L, D) per segment: the same math as the block mask restricted to one block.
        seg = F.scaled_dot_product_attention(
            q[begin:end].transpose(0, 1)[None],
            k[begin:end].transpose(0, 1)[None],
            v[begin:end].transpose(0, 1)[None],
            dropout_p=dropout_p,
            is_causal=True,
        )
        out[begin:end] = seg[0].transpose(0, 1)
    return out


def varlen_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: VarlenSegments, dropout_p: float = 0.0
) -> torch.Tensor:
    """Causal attention within each segment. q (N, Hq, D), k/v (N, Hkv, D) with Hq a multiple of Hkv."""
    if segments.kernel == "reference":
        return _reference_varlen(q, k, v, segments.cu_seqlens, dropout_p)
    # Under autocast, rotary embeddings leave q and k in fp32 beside a bf16 v (elementwise ops are not autocast);
    # the flash kernels take one half-precision dtype, as SDPA would have cast to under autocast.
    dtype = compute_dtype(q.device, q.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    cu = segments.cu_seqlens.to(q.device)
    if segments.kernel == "flash_attn":
        return _flash_attn_varlen()(
            q, k, v, cu, cu, segments.max_seqlen, segments.max_seqlen, dropout_p=dropout_p, causal=True
        )
    if segments.kernel == "torch":
        if dropout_p:
            raise ValueError("torch's varlen_attn has no dropout; set attention_dropout to 0 or use flash_attn")
        return _torch_varlen()(
            q,
            k,
            v,
            cu,
            cu,
            segments.max_seqlen,
            segments.max_seqlen,
            window_size=(-1, 0),
            enable_gqa=q.shape[1] != k.shape[1],
        )
    raise ValueError(f"unknown varlen kernel {segments.kernel!r}")
