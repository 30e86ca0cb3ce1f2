"""Packed rows under the block attention mask: every document's logits equal the document run alone (fp32,
1e-5), whatever ``use_cache`` says; positions alone do not isolate documents on the exact (SDPA) path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from abacus_repro.model import MiniCPMConfig, MiniCPMForCausalLM
from abacus_repro.pretrain.data import make_batch

LENGTHS = (9, 14, 5, 20)  # four documents, then padding to the row length
ROW = 56
PAD = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(11)
    config = MiniCPMConfig(
        vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, scale_emb=12, scale_depth=1.4, dim_model_base=16,
        bos_token_id=1, eos_token_id=2, pad_token_id=PAD,
    )  # fmt: skip
    assert config.use_cache  # the default a user gets: the pitfall's precondition
    return MiniCPMForCausalLM(config).eval().float()


@pytest.fixture(scope="module")
def packed():
    generator = torch.Generator().manual_seed(5)
    documents = [torch.randint(4, 101, (n,), generator=generator) for n in LENGTHS]
    tokens = np.full((1, ROW), PAD, dtype=np.int32)
    segments = np.full((1, ROW), -1, dtype=np.int32)
    offset = 0
    for index, document in enumerate(documents):
        tokens[0, offset : offset + len(document)] = document.numpy()
        segments[0, offset : offset + len(document)] = index
        offset += len(document)
    arrays = {"tokens": tokens, "segments": segments, "loss_mask": (segments >= 0).astype(np.uint8)}
    # Exactly what the trainer feeds the model: input_ids, document_ids, restarting position_ids, labels.
    batch = {name: torch.from_numpy(value) for name, value in make_batch(arrays, np.array([0])).items()}
    return documents, batch


def spans():
    starts = np.cumsum((0, *LENGTHS[:-1]))
    return [(int(start), int(start) + n) for start, n in zip(starts, LENGTHS, strict=True)]


@pytest.mark.parametrize("use_cache", [None, True, False])
def test_packed_logits_equal_each_document_alone(model, packed, use_cache):
    documents, batch = packed
    kwargs = {} if use_cache is None else {"use_cache": use_cache}
    with torch.no_grad():
        row = model(
            input_ids=batch["input_ids"],
            document_ids=batch["document_ids"],
            position_ids=batch["position_ids"],
            **kwargs,
        ).logits[0]
        for (start, end), document in zip(spans(), documents, strict=True):
            alone = model(input_ids=document[None], use_cache=False).logits[0]
            assert row.dtype == torch.float32
            torch.testing.assert_close(row[start:end], alone, rtol=0, atol=1e-5)


def test_positions_alone_do_not_isolate_documents(model, packed):
    """The pitfall: restarting positions without the block mask lets every document see the ones before it.

    (Hugging Face's varlen detection from position_ids works only on flash-attention kernels and is skipped when
    a KV cache is in play; the trainer therefore always passes document_ids, and use_cache=False.)
    """
    documents, batch = packed
    with torch.no_grad():
        positions_only = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        second_alone = model(input_ids=documents[1][None], use_cache=False).logits[0]
    start, end = spans()[1]
    assert (positions_only[start:end] - second_alone).abs().max() > 1e-2
    # The first document has nothing before it: it is unaffected either way.
    first_alone = model(input_ids=documents[0][None], use_cache=False).logits[0]
    torch.testing.assert_close(positions_only[: LENGTHS[0]], first_alone.detach(), rtol=0, atol=1e-5)


def test_block_mask_cannot_be_combined_with_a_cache(model, packed):
    documents, batch = packed
    with torch.no_grad():
        out = model(input_ids=documents[0][None], use_cache=True)
        with pytest.raises(ValueError, match="KV cache"):
            model(input_ids=batch["input_ids"], document_ids=batch["document_ids"], past_key_values=out.past_key_values)


def test_loss_of_a_packed_row_is_the_documents_own_losses(model, packed):
    """No target crosses a boundary: the packed loss equals the token-weighted mean of the documents' losses."""
    documents, batch = packed
    with torch.no_grad():
        packed_loss = model(**batch, use_cache=False).loss
        total, count = 0.0, 0
        for document in documents:
            loss = model(input_ids=document[None], labels=document[None], use_cache=False).loss
            total += float(loss) * (len(document) - 1)
            count += len(document) - 1
    assert float(packed_loss) == pytest.approx(total / count, rel=1e-5)


def _row_logits(model, documents, document_mask: bool, attention: str) -> torch.Tensor:
    """The packed row's logits as the trainer computes them under ``train.attention`` (plain: no document mask)."""
    from abacus_repro.model import set_packed_attention

    tokens = np.full((1, ROW), PAD, dtype=np.int32)
    segments = np.full((1, ROW), -1, dtype=np.int32)
    for index, ((start, end), document) in enumerate(zip(spans(), documents, strict=True)):
        tokens[0, start:end] = document.numpy()
        segments[0, start:end] = index
    arrays = {"tokens": tokens, "segments": segments, "loss_mask": (segments >= 0).astype(np.uint8)}
    batch = {k: torch.from_numpy(v) for k, v in make_batch(arrays, np.array([0]), document_mask).items()}
    batch.pop("labels")
    set_packed_attention(model, attention, "reference")
    try:
        with torch.no_grad():
            return model(**batch, use_cache=False).logits[0]
    finally:
        set_packed_attention(model, "block_mask")


@pytest.mark.parametrize("attention", ["block_mask", "varlen"])
def test_plain_packing_sees_the_previous_document_and_the_block_mask_does_not(model, packed, attention):
    """train.attention=plain: the second document's logits change with the first; under the document mask they
    do not. Either model path (block mask or varlen) honours a plain batch: one causal sequence over the row."""
    documents, _ = packed
    changed = [torch.remainder(documents[0] + 7, 97) + 4, *documents[1:]]
    second = slice(*spans()[1])
    masked = _row_logits(model, documents, True, attention)
    torch.testing.assert_close(masked[second], _row_logits(model, changed, True, attention)[second], rtol=0, atol=1e-5)
    plain = _row_logits(model, documents, False, attention)
    assert (plain[second] - _row_logits(model, changed, False, attention)[second]).abs().max() > 1e-3
    # Plain packing is the whole row as one sequence: positions 0..ROW-1, causal attention.
    row = torch.cat([*documents, torch.full((ROW - sum(LENGTHS),), PAD)])[None]
    with torch.no_grad():
        whole = model(input_ids=row, use_cache=False).logits[0]
    torch.testing.assert_close(plain, whole, rtol=0, atol=1e-5)


def test_plain_attention_mode_on_every_device():
    from abacus_repro.pretrain.trainer import packed_attention_mode

    assert packed_attention_mode("plain", torch.device("cpu")) == "plain"
    assert packed_attention_mode("plain", torch.device("cuda")) == "plain"
