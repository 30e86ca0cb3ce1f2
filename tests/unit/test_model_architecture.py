"""The MiniCPM architecture: scalings, block attention, positions, loss, generation, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

import abacus_repro.model as minicpm
from abacus_repro.model import MiniCPMConfig, MiniCPMForCausalLM, build_block_mask, positions_from_documents

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> MiniCPMConfig:
    settings = {
        "vocab_size": 97,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "scale_emb": 12,
        "scale_depth": 1.4,
        "dim_model_base": 16,
        "initializer_range": 0.1,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
    }
    settings.update(overrides)
    return MiniCPMConfig(**settings)


def tiny_model(seed: int = 0, **overrides) -> MiniCPMForCausalLM:
    torch.manual_seed(seed)
    return MiniCPMForCausalLM(tiny_config(**overrides)).eval()


def manual_logits(model: MiniCPMForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """MiniCPM written out by hand from its definition, with explicit softmax attention and rotate_half RoPE."""
    cfg = model.config
    n_heads, n_kv, head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size // 4
    seq = ids.shape[1]

    def rms(x, weight):
        return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps)

    pos = torch.arange(seq, dtype=torch.float32)
    inv = torch.tensor([1.0 / cfg.rope_theta ** (2 * i / head_dim) for i in range(head_dim // 2)])
    angles = torch.cat([pos[:, None] * inv, pos[:, None] * inv], dim=-1)

    def rope(x):  # x: (heads, seq, head_dim)
        rotated = torch.cat([-x[..., head_dim // 2 :], x[..., : head_dim // 2]], dim=-1)
        return x * angles.cos() + rotated * angles.sin()

    embed = model.model.embed_tokens.weight
    h = embed[ids[0]] * cfg.scale_emb
    branch_scale = cfg.scale_depth / math.sqrt(cfg.num_hidden_layers)
    causal = torch.ones(seq, seq).tril().bool()
    for layer in model.model.layers:
        a = layer.self_attn
        x = rms(h, layer.input_layernorm.weight)
        q = rope((x @ a.q_proj.weight.T).view(seq, n_heads, head_dim).transpose(0, 1))
        k = rope((x @ a.k_proj.weight.T).view(seq, n_kv, head_dim).transpose(0, 1))
        v = (x @ a.v_proj.weight.T).view(seq, n_kv, head_dim).transpose(0, 1)
        k = k.repeat_interleave(n_heads // n_kv, 0)
        v = v.repeat_interleave(n_heads // n_kv, 0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(head_dim)
        attn = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        h = h + (attn.transpose(0, 1).reshape(seq, -1) @ a.o_proj.weight.T) * branch_scale
        m = layer.mlp
        x = rms(h, layer.post_attention_layernorm.weight)
        mlp = (torch.nn.functional.silu(x @ m.gate_proj.weight.T) * (x @ m.up_proj.weight.T)) @ m.down_proj.weight.T
        h = h + mlp * branch_scale
    h = rms(h, model.model.norm.weight)
    return (h / (cfg.hidden_size / cfg.dim_model_base)) @ embed.T


def test_forward_matches_manual_minicpm_computation():
    model = tiny_model(seed=1)
    ids = torch.randint(4, 97, (1, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(ids).logits[0]
        expected = manual_logits(model, ids)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4), (ours - expected).abs().max()


def test_scalings_change_the_output_as_defined():
    # Doubling dim_model_base halves the divisor hidden/dim_model_base, so the logits double exactly.
    base = tiny_model(seed=2)
    wider = tiny_model(seed=2, dim_model_base=32)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.allclose(wider(ids).logits, 2 * base(ids).logits, atol=1e-6)
    assert base.config.residual_scale == pytest.approx(1.4 / math.sqrt(3))
    assert base.config.logit_divisor == pytest.approx(64 / 16)


def test_weights_are_tied_and_named_like_minicpm_2b():
    model = tiny_model()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    names = set(model.state_dict())
    expected_layer = {
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
        "input_layernorm.weight", "post_attention_layernorm.weight",
    }  # fmt: skip
    for i in range(3):
        assert {f"model.layers.{i}.{n}" for n in expected_layer} <= names
    assert {"model.embed_tokens.weight", "model.norm.weight"} <= names
    # GQA: 2 key/value heads of 16 dims.
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (32, 64)


def test_build_block_mask_is_causal_within_documents():
    mask = build_block_mask(torch.tensor([[0, 0, 1, 1, 1]]))
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert mask.shape == (1, 1, 5, 5)
    assert torch.equal(mask[0, 0], expected)


def test_positions_restart_at_every_document():
    docs = torch.tensor([[5, 5, 5, 7, 7, 9], [-1, -1, 0, 0, 0, 0]])
    assert positions_from_documents(docs).tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 0, 1, 2, 3]]


def test_packed_documents_give_the_same_logits_as_each_document_alone():
    model = tiny_model(seed=3)
    gen = torch.Generator().manual_seed(1)
    doc1, doc2, doc3 = (torch.randint(4, 97, (n,), generator=gen) for n in (7, 11, 5))
    packed = torch.cat([doc1, doc2, doc3])[None]
    document_ids = torch.tensor([[0] * 7 + [1] * 11 + [2] * 5])
    with torch.no_grad():
        packed_logits = model(packed, document_ids=document_ids).logits[0]
        alone2 = model(doc2[None]).logits[0]
        alone3 = model(doc3[None]).logits[0]
        # Without the block mask, document 2 would see document 1: the logits must differ.
        unmasked = model(packed).logits[0]
    assert torch.allclose(packed_logits[7:18], alone2, atol=1e-5)
    assert torch.allclose(packed_logits[18:], alone3, atol=1e-5)
    assert not torch.allclose(unmasked[7:18], alone2, atol=1e-3)


def test_explicit_positions_override_document_restart():
    model = tiny_model(seed=4)
    ids = torch.randint(4, 97, (1, 10), generator=torch.Generator().manual_seed(2))
    document_ids = torch.tensor([[0] * 4 + [1] * 6])
    with torch.no_grad():
        implied = model(ids, document_ids=document_ids).logits
        explicit = model(ids, document_ids=document_ids, position_ids=positions_from_documents(document_ids)).logits
        # RoPE is relative: shifting a whole document's positions changes nothing inside its block ...
        shifted = model(ids, document_ids=document_ids, position_ids=torch.arange(10)[None]).logits
        # ... but positions that are not a shift (all zeros) must change the result.
        flat = model(ids, document_ids=document_ids, position_ids=torch.zeros(1, 10, dtype=torch.long)).logits
    assert torch.allclose(implied, explicit)
    assert torch.allclose(implied, shifted, atol=1e-5)
    assert not torch.allclose(implied[0, 4:], flat[0, 4:], atol=1e-3)


def test_labels_loss_is_shifted_and_ignores_minus_100():
    model = tiny_model(seed=5)
    ids = torch.randint(4, 97, (2, 9), generator=torch.Generator().manual_seed(3))
    labels = ids.clone()
    labels[0, :4] = -100
    labels[1, 6] = -100
    out = model(ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 97)
    targets = labels[:, 1:].reshape(-1)
    keep = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(out.loss, expected, atol=1e-6)
    out.loss.backward()
    assert model.model.embed_tokens.weight.grad is not None


def greedy_by_full_forward(model, ids: torch.Tensor, n: int) -> torch.Tensor:
    seq = ids
    with torch.no_grad():
        for _ in range(n):
            nxt = model(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    return seq


def test_generate_equals_repeated_full_forward_argmax():
    # A larger init spreads the logits, so greedy decoding wanders instead of repeating one token.
    model = tiny_model(seed=6, initializer_range=0.5)
    ids = torch.randint(4, 97, (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        generated = model.generate(ids, max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=3)
    expected = greedy_by_full_forward(model, ids, 16)
    assert torch.equal(generated, expected)
    assert len(set(generated[0, 6:].tolist())) > 1


def test_left_padded_batch_generates_like_single_prompts():
    model = tiny_model(seed=7, initializer_range=0.5)
    short, long = torch.tensor([10, 11, 12]), torch.tensor([20, 21, 22, 23, 24, 25])
    batch = torch.tensor([[3, 3, 3, 10, 11, 12], [20, 21, 22, 23, 24, 25]])
    attention = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    with torch.no_grad():
        together = model.generate(
            batch, attention_mask=attention, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=3
        )
        alone_short = model.generate(short[None], max_new_tokens=8, do_sample=False, eos_token_id=None)
        alone_long = model.generate(long[None], max_new_tokens=8, do_sample=False, eos_token_id=None)
    assert together[0, 6:].tolist() == alone_short[0, 3:].tolist()
    assert together[1, 6:].tolist() == alone_long[0, 6:].tolist()


def test_save_and_load_through_auto_classes(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = tiny_model(seed=8)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "minicpm"
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MiniCPMConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MiniCPMForCausalLM)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_minicpm_2b_checkpoint_layout_loads_without_remote_code(tmp_path):
    """A directory shaped like openbmb/MiniCPM-2B: its config.json (auto_map, bf16, no lm_head weight)."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    source = tiny_model(seed=9)
    config = {
        "architectures": ["MiniCPMForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_minicpm.MiniCPMConfig",
            "AutoModel": "modeling_minicpm.MiniCPMModel",
            "AutoModelForCausalLM": "modeling_minicpm.MiniCPMForCausalLM",
        },
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.1,
        "intermediate_size": 96,
        "max_position_embeddings": 256,
        "model_type": "minicpm",
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.0",
        "use_cache": True,
        "vocab_size": 97,
        "scale_emb": 12,
        "dim_model_base": 16,
        "scale_depth": 1.4,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = {k: v.to(torch.bfloat16).contiguous() for k, v in source.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert isinstance(loaded, MiniCPMForCausalLM)
    assert torch.equal(loaded.lm_head.weight, weights["model.embed_tokens.weight"].float())
    assert torch.equal(
        loaded.model.layers[2].mlp.down_proj.weight, weights["model.layers.2.mlp.down_proj.weight"].float()
    )


def test_config_rejects_impossible_shapes():
    with pytest.raises(ValueError, match="num_key_value_heads"):
        tiny_config(num_key_value_heads=3)
    with pytest.raises(ValueError, match="hidden_size"):
        tiny_config(hidden_size=66)
    assert tiny_config(init_std=0.25).initializer_range == 0.25
    assert minicpm.MiniCPMConfig.model_type == "minicpm"
