"""A faithful MiniCPM-2B causal LM: Llama blocks plus MiniCPM's three scalings.

* Llama blocks: RMSNorm, rotary position embeddings (Hugging Face ``rotate_half`` convention), SwiGLU MLP,
  grouped-query attention.
* MiniCPM: embeddings times ``scale_emb``; each residual branch times ``scale_depth / sqrt(num_hidden_layers)``;
  logits from ``hidden_states / (hidden_size / dim_model_base)``; output projection tied to the embeddings.

Parameter names are those of the published openbmb/MiniCPM-2B checkpoint (Llama naming), so it loads without
``trust_remote_code``.

Every saved model directory also carries this file, ``configuration.py`` and ``attention.py`` (transformers copies
a class's module and its relative imports), with an ``auto_map`` in config.json, so plain transformers loads it
with ``trust_remote_code=True`` as the seed's users do. These three modules therefore import only torch,
transformers, the standard library and each other.

Packed training rows hold several documents. ``document_ids`` (B, T) gives each token's document; attention
is then block-diagonal-causal (a token sees only earlier tokens of its own document) and, unless
``position_ids`` are given, positions restart at 0 at every document start. Masks are boolean and go to
torch's scaled_dot_product_attention, so the result is exact on CPU.

``set_packed_attention(model, "varlen")`` swaps the (T, T) block mask for variable-length attention over the
flattened batch (flash-attention varlen kernels on GPU, an exact per-document loop elsewhere; see
``attention.py``). Segments then come from ``document_ids`` or from position ids that restart per document.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .attention import (
    PACKED_ATTENTION,
    VarlenSegments,
    compute_dtype,
    resolve_varlen_kernel,
    varlen_attention,
    varlen_segments,
)
from .configuration import MiniCPMConfig

IGNORE_INDEX = -100


# ---------------------------------------------------------------------------------------------------------------
# Masks and positions from document ids (public: the trainer and tests use them)
# ---------------------------------------------------------------------------------------------------------------


def build_block_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask (B, 1, T, T): query i may attend key j iff j <= i and both share a document.

    True means "attend" (the convention of torch's scaled_dot_product_attention). The diagonal is always
    True, so no row is empty.
    """
    if document_ids.dim() != 2:
        raise ValueError(f"document_ids must be (batch, seq_len), got shape {tuple(document_ids.shape)}")
    seq_len = document_ids.shape[1]
    same_document = document_ids[:, :, None] == document_ids[:, None, :]
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=document_ids.device).tril()
    return (same_document & causal)[:, None, :, :]


def positions_from_documents(document_ids: torch.Tensor) -> torch.Tensor:
    """Position ids (B, T) that restart at 0 wherever the document id changes (and at the row start)."""
    if document_ids.dim() != 2:
        raise ValueError(f"document_ids must be (batch, seq_len), got shape {tuple(document_ids.shape)}")
    batch, seq_len = document_ids.shape
    index = torch.arange(seq_len, device=document_ids.device).expand(batch, seq_len)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    # Index of the latest document start at or before each token: a running max over start indices.
    start_index = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - start_index


def _padding_aware_mask(attention_mask: torch.Tensor, query_len: int, past_len: int) -> torch.Tensor:
    """Boolean (B, 1, Tq, Tk) mask from a 2-D padding mask over past + current tokens, causal with offset."""
    key_len = attention_mask.shape[1]
    if key_len != past_len + query_len:
        raise ValueError(
            f"attention_mask covers {key_len} tokens, expected past ({past_len}) + new ({query_len}) tokens"
        )
    device = attention_mask.device
    query_pos = torch.arange(query_len, device=device)[:, None] + past_len
    key_pos = torch.arange(key_len, device=device)[None, :]
    causal = key_pos <= query_pos
    mask = causal[None, :, :] & attention_mask[:, None, :].bool()
    # A padded query row would attend to nothing (NaN in softmax); let it see itself. Its output is ignored.
    mask = mask | (key_pos == query_pos)[None, :, :]
    return mask[:, None, :, :]


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


class MiniCPMRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 whatever the training precision, as MiniCPM and Llama do.
        input_dtype = hidden_states.dtype
        states = hidden_states.to(torch.float32)
        states = states * torch.rsqrt(states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * states.to(input_dtype)


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos and sin (B, T, head_dim) for the rotate_half convention (both halves share the frequencies).

    Computed on the fly (a few hundred values) rather than kept in a buffer, so loading onto the meta
    device and from checkpoints never leaves it uninitialised.
    """
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=position_ids.device) / head_dim)
    )
    freqs = position_ids[..., None].to(torch.float32) * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, heads, T, head_dim); cos/sin: (B, T, head_dim)."""
    cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


class MiniCPMAttention(nn.Module):
    def __init__(self, config: MiniCPMConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.attention_dropout = config.attention_dropout
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, hidden_states, cos, sin, mask, past_key_values: Cache | None):
        batch, seq_len, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch, seq_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch, seq_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)
        if isinstance(mask, VarlenSegments):
            return self.o_proj(self._varlen(q, k, v, mask))
        if self.num_kv_heads != self.num_heads:
            repeat = self.num_heads // self.num_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        is_causal = isinstance(mask, str)  # "causal": plain causal attention, no explicit mask needed
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if is_causal else mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        out = out.transpose(1, 2).reshape(batch, seq_len, self.num_heads * self.head_dim)
        return self.o_proj(out)

    def _varlen(self, q, k, v, segments: VarlenSegments) -> torch.Tensor:
        """(B, H, T, D) heads flattened to (B*T, H, D) tokens, attended within segments, back to (B, T, H*D)."""
        batch, _, seq_len, _ = q.shape

        def flat(x):
            return x.transpose(1, 2).reshape(batch * seq_len, x.shape[1], self.head_dim)

        dropout = self.attention_dropout if self.training else 0.0
        out = varlen_attention(flat(q), flat(k), flat(v), segments, dropout)
        return out.reshape(batch, seq_len, self.num_heads * self.head_dim)


class MiniCPMMLP(nn.Module):
    def __init__(self, config: MiniCPMConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MiniCPMDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniCPMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = MiniCPMAttention(config, layer_idx)
        self.mlp = MiniCPMMLP(config)
        self.input_layernorm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)
        # MiniCPM's depth scaling keeps the residual stream's growth independent of the number of layers.
        self.residual_scale = config.residual_scale

    def forward(self, hidden_states, cos, sin, mask, past_key_values=None):
        attn = self.self_attn(self.input_layernorm(hidden_states), cos, sin, mask, past_key_values)
        hidden_states = hidden_states + attn * self.residual_scale
        mlp = self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states + mlp * self.residual_scale


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class MiniCPMPreTrainedModel(PreTrainedModel):
    config_class = MiniCPMConfig
    config: MiniCPMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["MiniCPMDecoderLayer"]
    _skip_keys_device_placement: ClassVar[list[str]] = ["past_key_values"]
    _supports_sdpa = True

    def _init_weights(self, module):
        # MiniCPM's init: every linear and embedding weight ~ N(0, initializer_range), norms at 1.
        super()._init_weights(module)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saved class and its config in auto_map; the seed's checkpoints map
        # AutoModel too. Starting afresh also drops a published checkpoint's map, which names modeling_minicpm.py
        # (not saved here).
        self.config.auto_map = remote_code_auto_map()
        return super().save_pretrained(save_directory, *args, **kwargs)


class MiniCPMModel(MiniCPMPreTrainedModel):
    def __init__(self, config: MiniCPMConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(MiniCPMDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = MiniCPMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gradient_checkpointing = False
        # How packed rows are attended (not saved with the model: a property of the run, not the weights).
        self.packed_attention = "block_mask"
        self.varlen_kernel = "auto"
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        document_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden_states = inputs_embeds * self.config.scale_emb
        batch, seq_len = hidden_states.shape[:2]

        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0

        mask = self._varlen_segments(attention_mask, position_ids, document_ids, past_len, hidden_states.dtype)
        if mask is None:
            mask = self._attention_mask(attention_mask, document_ids, batch, seq_len, past_len, hidden_states.device)
        if position_ids is None:
            position_ids = self._positions(attention_mask, document_ids, batch, seq_len, past_len, hidden_states.device)
        cos, sin = rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta, hidden_states.dtype)

        all_hidden = [] if output_hidden_states else None
        for layer in self.layers:
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            hidden_states = layer(hidden_states, cos, sin, mask, past_key_values if use_cache else None)
        hidden_states = self.norm(hidden_states)
        if all_hidden is not None:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )

    def _varlen_segments(self, attention_mask, position_ids, document_ids, past_len, dtype) -> VarlenSegments | None:
        """Segments for varlen attention, or None where the masked path applies.

        Varlen covers packed training and scoring (no KV cache, no padding mask); generation with a cache and
        left-padded batches keep the mask path, which handles both exactly.
        """
        if self.packed_attention != "varlen" or past_len:
            return None
        if document_ids is None and position_ids is None:
            return None
        if attention_mask is not None and (attention_mask.dim() != 2 or not bool(attention_mask.bool().all())):
            return None
        device = self.embed_tokens.weight.device
        kernel = resolve_varlen_kernel(self.varlen_kernel, device, compute_dtype(device, dtype))
        if document_ids is not None:
            return varlen_segments(None, document_ids.to(device), kernel)
        return varlen_segments(position_ids.to(device), None, kernel)

    @staticmethod
    def _attention_mask(attention_mask, document_ids, batch, seq_len, past_len, device):
        """The mask handed to SDPA: "causal" (fast path), None (attend to all) or a boolean (B,1,Tq,Tk) tensor."""
        if attention_mask is not None and attention_mask.dim() == 4:
            # An explicit mask: boolean (True = attend) or additive float (0 = attend).
            if attention_mask.dtype == torch.bool:
                return attention_mask
            return attention_mask >= -1.0
        padded = attention_mask is not None and not bool(attention_mask.bool().all())
        if document_ids is not None:
            if past_len:
                raise ValueError("document_ids cannot be combined with a non-empty KV cache")
            mask = build_block_mask(document_ids.to(device))
            if padded:
                # Both masks keep the diagonal, so no row is left empty.
                mask = mask & _padding_aware_mask(attention_mask.to(device), seq_len, 0)
            return mask
        if padded:
            return _padding_aware_mask(attention_mask.to(device), seq_len, past_len)
        if past_len == 0:
            return "causal"
        if seq_len == 1:
            return None  # one new token attends to everything cached
        full = torch.ones(batch, past_len + seq_len, dtype=torch.bool, device=device)
        return _padding_aware_mask(full, seq_len, past_len)

    @staticmethod
    def _positions(attention_mask, document_ids, batch, seq_len, past_len, device):
        if document_ids is not None:
            return positions_from_documents(document_ids.to(device))
        if attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.bool().all()):
            # Left padding: count only real tokens, so a padded prompt gets the positions it would have alone.
            positions = attention_mask.long().cumsum(-1) - 1
            return positions.clamp(min=0)[:, -seq_len:].to(device)
        return (torch.arange(seq_len, device=device) + past_len).expand(batch, seq_len)


class MiniCPMForCausalLM(MiniCPMPreTrainedModel, GenerationMixin):
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MiniCPMConfig):
        super().__init__(config)
        self.model = MiniCPMModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        document_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            document_ids=document_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden_states = hidden_states[:, logits_to_keep]
        # MiniCPM's width scaling: the tied projection sees hidden / (hidden_size / dim_model_base).
        logits = self.lm_head(hidden_states / self.config.logit_divisor)

        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, num_items_in_batch)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
        )


# The Auto classes a saved directory maps to this code (config.json's auto_map); the package registers each
# class for its Auto class, so save_pretrained copies the defining files next to the weights.
AUTO_CLASSES: dict[str, type] = {
    "AutoConfig": MiniCPMConfig,
    "AutoModel": MiniCPMModel,
    "AutoModelForCausalLM": MiniCPMForCausalLM,
}


def remote_code_auto_map() -> dict[str, str]:
    """config.json's auto_map: Auto class -> "<saved module file stem>.<class name>" (transformers' format)."""
    return {auto: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for auto, cls in AUTO_CLASSES.items()}


def set_packed_attention(model: torch.nn.Module, mode: str, kernel: str = "auto") -> None:
    """Choose how packed rows are attended: ``block_mask`` (SDPA with a (T, T) mask) or ``varlen``."""
    if mode not in PACKED_ATTENTION:
        raise ValueError(f"unknown packed attention {mode!r}; choose one of {', '.join(PACKED_ATTENTION)}")
    inner = model
    while not isinstance(inner, MiniCPMModel):
        inner = getattr(inner, "model", None) or getattr(inner, "module", None)
        if inner is None:
            raise TypeError(f"{type(model).__name__} has no MiniCPMModel inside")
    inner.packed_attention = mode
    inner.varlen_kernel = kernel


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Next-token cross entropy: position t predicts labels[t+1]; label -100 is ignored (HF's convention).

    With ``num_items_in_batch`` (gradient accumulation) the sum is divided by it instead of the local count.
    """
    shift_logits = logits[:, :-1, :].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / num_items_in_batch
