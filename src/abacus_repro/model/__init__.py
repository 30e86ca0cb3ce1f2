"""The MiniCPM-2B architecture, its tokenizer and the tiny model built from config.

Importing this package registers ``MiniCPMConfig`` (model_type ``minicpm``) and ``MiniCPMForCausalLM`` with
transformers' Auto classes, so ``AutoModelForCausalLM.from_pretrained`` loads our checkpoints and the published
openbmb/MiniCPM-2B one without ``trust_remote_code``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration import MiniCPMConfig
from .modeling import (
    MiniCPMForCausalLM,
    MiniCPMModel,
    MiniCPMPreTrainedModel,
    build_block_mask,
    causal_lm_loss,
    positions_from_documents,
    set_packed_attention,
)


def _register() -> None:
    # exist_ok: importing twice (or a reload in tests) must not fail.
    AutoConfig.register(MiniCPMConfig.model_type, MiniCPMConfig, exist_ok=True)
    AutoModel.register(MiniCPMConfig, MiniCPMModel, exist_ok=True)
    AutoModelForCausalLM.register(MiniCPMConfig, MiniCPMForCausalLM, exist_ok=True)


_register()

__all__ = [
    "MiniCPMConfig",
    "MiniCPMForCausalLM",
    "MiniCPMModel",
    "MiniCPMPreTrainedModel",
    "build_block_mask",
    "causal_lm_loss",
    "positions_from_documents",
    "set_packed_attention",
]
