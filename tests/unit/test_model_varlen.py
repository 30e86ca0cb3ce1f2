"""Varlen attention over packed rows: the same logits and gradients as the block mask and as each document run
alone, with segments taken from document ids or from restarting position ids (the Hugging Face packing
convention). On a machine with CUDA the flash kernels are checked against the exact reference kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from abacus_repro.model import MiniCPMConfig, MiniCPMForCausalLM, set_packed_attention
from abacus_repro.model.attention import (
    available_kernels,
    cu_seqlens_from_starts,
    resolve_varlen_kernel,
    segment_starts_from_documents,
    segment_starts_from_positions,
    varlen_attention,
    varlen_segments,
)
from abacus_repro.pretrain.data import make_batch
from abacus_repro.pretrain.trainer import packed_attention_mode

PAD = 3
# Two rows: documents of these lengths, then padding to ROW (the second row's last document is cut by the row).
ROWS = ((9, 14, 5, 20), (30, 11, 15))
ROW = 56


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 11) -> MiniCPMForCausalLM:
    torch.manual_seed(seed)
    config = MiniCPMConfig(
        vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, scale_emb=12, scale_depth=1.4, dim_model_base=16,
        bos_token_id=1, eos_token_id=2, pad_token_id=PAD,
    )  # fmt: skip
    return MiniCPMForCausalLM(config).float()


def packed_rows():
    """The trainer's batch for two packed rows, and each row's documents as (start, tokens)."""
    generator = torch.Generator().manual_seed(5)
    tokens = np.full((len(ROWS), ROW), PAD, dtype=np.int32)
    segments = np.full((len(ROWS), ROW), -1, dtype=np.int32)
    documents = []
    for row, lengths in enumerate(ROWS):
        offset = 0
        for index, n in enumerate(lengths):
            n = min(n, ROW - offset)
            doc = torch.randint(4, 101, (n,), generator=generator)
            tokens[row, offset : offset + n] = doc.numpy()
            segments[row, offset : offset + n] = index
            documents.append((row, offset, doc))
            offset += n
    arrays = {"tokens": tokens, "segments": segments, "loss_mask": (segments >= 0).astype(np.uint8)}
    batch = {name: torch.from_numpy(value) for name, value in make_batch(arrays, np.arange(len(ROWS))).items()}
    return batch, documents


def test_segments_from_positions_and_from_document_ids_agree():
    batch, documents = packed_rows()
    by_documents = cu_seqlens_from_starts(segment_starts_from_documents(batch["document_ids"]))
    by_positions = cu_seqlens_from_starts(segment_starts_from_positions(batch["position_ids"]))
    assert torch.equal(by_documents[0], by_positions[0]) and by_documents[1] == by_positions[1]
    cu_seqlens, max_seqlen = by_documents
    assert cu_seqlens.dtype == torch.int32
    # Row 0: 9, 14, 5, 20 then 8 padding; row 1 (offset 56): 30, 11, 15 (the row is full, no padding).
    assert cu_seqlens.tolist() == [0, 9, 23, 28, 48, 56, 86, 97, 112]
    assert max_seqlen == 30
    assert len(documents) == 7


def test_a_row_start_always_starts_a_segment():
    """A document cut by the row end continues in the next row with positions that do not restart."""
    positions = torch.tensor([[0, 1, 2, 3], [4, 5, 0, 1]])
    cu_seqlens, max_seqlen = cu_seqlens_from_starts(segment_starts_from_positions(positions))
    assert cu_seqlens.tolist() == [0, 4, 6, 8] and max_seqlen == 4


@pytest.mark.parametrize("source", ["document_ids", "position_ids"])
@pytest.mark.parametrize("use_cache", [None, True, False])
def test_varlen_logits_equal_each_document_alone(source, use_cache, monkeypatch):
    calls = count_reference_calls(monkeypatch)
    model = tiny_model().eval()
    set_packed_attention(model, "varlen")
    batch, documents = packed_rows()
    kwargs = {source: batch[source]}
    if use_cache is not None:
        kwargs["use_cache"] = use_cache
    with torch.no_grad():
        rows = model(input_ids=batch["input_ids"], **kwargs).logits
        for row, start, doc in documents:
            alone = model(input_ids=doc[None], use_cache=False).logits[0]
            torch.testing.assert_close(rows[row, start : start + len(doc)], alone, rtol=0, atol=1e-5)
    # The packed call went through varlen (one call per layer), the single documents through plain causal SDPA.
    assert calls == [8] * 3  # 7 documents + row 0's padding run


def count_reference_calls(monkeypatch) -> list[int]:
    """Record, for each call of the reference kernel, how many segments it attended."""
    from abacus_repro.model import attention

    calls: list[int] = []
    original = attention._reference_varlen

    def spy(q, k, v, cu_seqlens, dropout_p):
        calls.append(len(cu_seqlens) - 1)
        return original(q, k, v, cu_seqlens, dropout_p)

    monkeypatch.setattr(attention, "_reference_varlen", spy)
    return calls


def test_varlen_matches_the_block_mask_in_loss_and_gradients(monkeypatch):
    """Training under either mode is the same computation: equal loss and equal gradients for every weight."""
    calls = count_reference_calls(monkeypatch)
    batch, _ = packed_rows()
    grads, losses = {}, {}
    for mode in ("block_mask", "varlen"):
        model = tiny_model().train()
        set_packed_attention(model, mode)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        losses[mode] = loss.detach()
        grads[mode] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert len(calls) == 3  # only the varlen model's three layers
    torch.testing.assert_close(losses["varlen"], losses["block_mask"], rtol=0, atol=1e-6)
    assert grads["varlen"].keys() == grads["block_mask"].keys() and len(grads["varlen"]) > 10
    for name, grad in grads["block_mask"].items():
        torch.testing.assert_close(grads["varlen"][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_generation_with_a_cache_keeps_the_masked_path(monkeypatch):
    """Varlen is for packed rows; cached decoding (and left padding) fall back to the exact masked path."""
    calls = count_reference_calls(monkeypatch)
    model = tiny_model().eval()
    prompt = torch.tensor([[5, 17, 23, 42, 8]])
    with torch.no_grad():
        expected = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=PAD)
        set_packed_attention(model, "varlen")
        got = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=PAD)
    assert torch.equal(got, expected)
    assert len(calls) == 3  # the prompt's forward (one segment per layer); the cached steps took the mask path


def test_kernel_choice_on_this_device():
    cpu = torch.device("cpu")
    assert available_kernels(cpu, torch.float32) == ["reference"]
    assert resolve_varlen_kernel("auto", cpu, torch.bfloat16) == "reference"
    with pytest.raises(RuntimeError, match="cannot run on cpu"):
        resolve_varlen_kernel("torch", cpu, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown varlen kernel"):
        resolve_varlen_kernel("xformers", cpu, torch.float32)
    with pytest.raises(ValueError, match="unknown packed attention"):
        set_packed_attention(tiny_model(), "sliding")


def test_the_kernel_is_chosen_for_the_dtype_attention_runs_in():
    """bf16 mixed precision keeps fp32 weights: under autocast the kernel must be picked for bf16, not fp32."""
    from abacus_repro.model.attention import compute_dtype

    cpu = torch.device("cpu")
    assert compute_dtype(cpu, torch.float32) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_dtype(cpu, torch.float32) == torch.bfloat16


def test_varlen_under_bf16_autocast_follows_the_block_mask():
    batch, _ = packed_rows()
    losses = {}
    for mode in ("block_mask", "varlen"):
        model = tiny_model().eval()
        set_packed_attention(model, mode)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            losses[mode] = float(model(**batch, use_cache=False).loss)
    assert losses["varlen"] == pytest.approx(losses["block_mask"], rel=2e-2)


def test_auto_attention_is_varlen_on_gpu_and_the_block_mask_on_cpu():
    assert packed_attention_mode("auto", torch.device("cpu")) == "block_mask"
    assert packed_attention_mode("auto", torch.device("cuda")) == "varlen"
    assert packed_attention_mode("varlen", torch.device("cpu")) == "varlen"


def test_varlen_needs_segments():
    with pytest.raises(ValueError, match="document_ids or per-document position_ids"):
        varlen_segments(None, None, "reference")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the flash varlen kernels need a CUDA GPU")
@pytest.mark.parametrize("kernel", ["flash_attn", "torch"])
def test_flash_kernels_match_the_reference_on_gpu(kernel):
    device = torch.device("cuda")
    if kernel not in available_kernels(device, torch.bfloat16):
        pytest.skip(f"{kernel} is not installed on this GPU machine")
    batch, _ = packed_rows()
    generator = torch.Generator(device="cpu").manual_seed(3)
    n = batch["input_ids"].numel()
    q, k, v = (torch.randn(n, h, 64, generator=generator) for h in (8, 2, 2))
    q, k, v = (x.to(device, torch.bfloat16) for x in (q, k, v))
    expected = varlen_attention(q, k, v, varlen_segments(None, batch["document_ids"].to(device), "reference"))
    got = varlen_attention(q, k, v, varlen_segments(None, batch["document_ids"].to(device), kernel))
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_the_torch_kernel_call_is_well_formed_on_the_meta_device():
    """Without a GPU the CUDA kernel cannot run, but PyTorch checks the call against the op's schema and shape
    functions on the meta device: argument order, causal window, grouped-query heads, output and gradient shapes."""
    from abacus_repro.model.attention import VarlenSegments

    q = torch.empty(112, 4, 16, device="meta", dtype=torch.bfloat16, requires_grad=True)
    k = torch.empty(112, 2, 16, device="meta", dtype=torch.bfloat16, requires_grad=True)
    v = torch.empty(112, 2, 16, device="meta", dtype=torch.bfloat16, requires_grad=True)
    cu_seqlens = torch.tensor([0, 9, 23, 28, 48, 56, 86, 97, 112], dtype=torch.int32)
    out = varlen_attention(q, k, v, VarlenSegments(cu_seqlens, 30, "torch"))
    assert out.shape == (112, 4, 16) and out.dtype == torch.bfloat16
    out.sum().backward()  # the backward op's shape function too: gradients come back in each input's shape
    assert q.grad.shape == q.shape and k.grad.shape == k.shape and v.grad.shape == v.shape
    with pytest.raises(ValueError, match="no dropout"):
        varlen_attention(q, k, v, VarlenSegments(cu_seqlens, 30, "torch"), dropout_p=0.1)
