"""Tokenization and packing: documents -> fixed-length rows that keep document boundaries.

Outputs are plain ``.npy`` arrays (tokens, segments, loss_mask) the trainer memory-maps, so the block
attention mask and the per-document positions come from ``segments`` without re-tokenizing.
"""

from .chat import AI_TAG, USER_TAG, render_chat, render_prompt
from .pack import (
    PackedData,
    count_tokens,
    encode_batch,
    load_tokenizer,
    tokenize_and_pack,
    tokenizer_hash,
    write_packed,
)
from .phase import tokenize_phase, tokenize_validation

__all__ = [
    "AI_TAG",
    "USER_TAG",
    "PackedData",
    "count_tokens",
    "encode_batch",
    "load_tokenizer",
    "render_chat",
    "render_prompt",
    "tokenize_and_pack",
    "tokenize_phase",
    "tokenize_validation",
    "tokenizer_hash",
    "write_packed",
]
