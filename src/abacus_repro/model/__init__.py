"""The MiniCPM-2B architecture, its tokenizer and the tiny model built from config.

Importing this package registers ``MiniCPMConfig`` (model_type ``minicpm``) and ``MiniCPMForCausalLM`` with
transformers' Auto classes, so ``AutoModelForCausalLM.from_pretrained`` loads our checkpoints and the published
openbmb/MiniCPM-2B one without ``trust_remote_code``. It also registers each class for its Auto class, so
``save_pretrained`` writes the modeling code next to the weights and plain transformers (without this package)
loads the directory with ``trust_remote_code=True``, as the seed's users load Abacus.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration import MiniCPMConfig
from .modeling import (
    AUTO_CLASSES,
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
    for auto_class, cls in AUTO_CLASSES.items():
        cls.register_for_auto_class(auto_class)


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
