"""The MiniCPM-2B configuration, field for field as in the published checkpoint's config.json.

Transformers 5 has no native class for MiniCPM-2B (model_type ``minicpm``), so the package owns one. A MiniCPM
checkpoint's config.json loads into this class unchanged; the fields beyond Llama's are MiniCPM's three
scalings (``scale_emb``, ``scale_depth``, ``dim_model_base``).

Saved model directories carry a copy of this file (see modeling.py), so it imports only the standard library,
torch and transformers.
"""

from __future__ import annotations

import math
from typing import ClassVar

from transformers import PreTrainedConfig


class MiniCPMConfig(PreTrainedConfig):
    r"""Configuration of a MiniCPM causal LM (Llama blocks plus MiniCPM's scalings).

    scale_emb: input embeddings are multiplied by it.
    scale_depth: each residual branch (attention and MLP output) is multiplied by
        ``scale_depth / sqrt(num_hidden_layers)``.
    dim_model_base: the final hidden states are divided by ``hidden_size / dim_model_base`` before the (tied)
        output projection, so logits keep their scale when the width grows (muP).
    initializer_range: std of the normal init of every linear and embedding weight (``init_std`` is accepted
        as an alias, the name the project's config uses).
    """

    model_type = "minicpm"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]
    attribute_map: ClassVar[dict[str, str]] = {"init_std": "initializer_range"}

    vocab_size: int = 122753
    hidden_size: int = 2304
    intermediate_size: int = 5760
    num_hidden_layers: int = 40
    num_attention_heads: int = 36
    num_key_value_heads: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 4096
    initializer_range: float = 0.1
    rms_norm_eps: float = 1e-5
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    scale_emb: float = 12.0
    scale_depth: float = 1.4
    dim_model_base: int = 256

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        # Older configs saved by MiniCPM's remote code carry the init std under this name.
        if "init_std" in kwargs:
            self.initializer_range = float(kwargs.pop("init_std"))
        super().__post_init__(**kwargs)
        self.validate_minicpm()

    def validate_minicpm(self) -> None:
        """Refuse shapes the architecture cannot have, naming the field."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads})"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("the head dimension (hidden_size / num_attention_heads) must be even for RoPE")
        if self.rope_scaling:
            raise ValueError(f"rope_scaling {self.rope_scaling!r} is not supported (MiniCPM-2B uses none)")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (MiniCPM-2B uses silu)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def residual_scale(self) -> float:
        """The factor on each residual branch: scale_depth / sqrt(num_hidden_layers)."""
        return float(self.scale_depth) / math.sqrt(self.num_hidden_layers)

    @property
    def logit_divisor(self) -> float:
        """Final hidden states are divided by this before the output projection: hidden_size / dim_model_base."""
        return self.hidden_size / float(self.dim_model_base)
