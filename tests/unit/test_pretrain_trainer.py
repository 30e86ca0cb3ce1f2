"""Trainer on the package's MiniCPM: loss falls, documents stay isolated, runs repeat exactly, phases chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from abacus_repro.errors import InputError
from abacus_repro.mixture.validation import VALIDATION_SOURCES
from abacus_repro.pretrain import wcl_lr
from abacus_repro.pretrain.data import IGNORE_INDEX, labels_from_batch, make_batch, position_ids_from_segments
from abacus_repro.pretrain.trainer import STATE_FILE, read_trainer_state, train_phase
from abacus_repro.tokenization import tokenize_and_pack, write_packed

from .pretrain_fixtures import (
    CODE_SNIPPETS,
    TEXT_SNIPPETS,
    build_model_dir,
    build_tokenizer,
    phase_paths,
    read_metrics,
    sft_doc,
    synthetic_corpus,
    training_settings,
)

SEQ_LEN = 64


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    tokenizer = build_tokenizer(root / "tokenizer")
    init = build_model_dir(root / "init", root / "tokenizer")
    data = {}
    corpora = {
        "pretrain": (synthetic_corpus(120, CODE_SNIPPETS + TEXT_SNIPPETS, "mixed"), False),
        "sft": ([sft_doc(f"Add {i}.", f"def add{i}(x):\n    return x + {i}\n") for i in range(40)], True),
    }
    for name, (docs, sft) in corpora.items():
        packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=sft)
        out = root / "tok" / name
        write_packed(packed, out / "tokens.npy", out / "segments.npy", out / "loss_mask.npy", out / "meta.json")
        data[name] = out
    # A validation split per source (the validation_split rule's, at test scale): SFT pairs and other documents.
    for source in VALIDATION_SOURCES:
        sft = source == "sft"
        docs = (
            [sft_doc(f"Double {i}.", f"def double{i}(x):\n    return {i} * x\n") for i in range(3)]
            if sft
            else synthetic_corpus(6, CODE_SNIPPETS if source == "code" else TEXT_SNIPPETS, f"val-{source}")
        )
        out = root / "tok" / "validation" / source
        packed = tokenize_and_pack(docs, tokenizer, SEQ_LEN, sft=sft)
        write_packed(packed, out / "tokens.npy", out / "segments.npy", out / "loss_mask.npy", out / "meta.json")
    return {"root": root, "tokenizer": tokenizer, "init": init, "data": data}


def run(workspace, phase, model_dir, data, name, seed=5, validation=False, **train_overrides):
    out = workspace["root"] / "runs" / name
    job = training_settings(seed, **train_overrides)
    held_out = workspace["root"] / "tok" / "validation" if validation else None
    state = train_phase(job, phase_paths(out, phase, model_dir, workspace["data"][data], job, held_out))
    return out, state


def test_positions_and_labels_follow_segments():
    segments = np.array([[0, 0, 0, 1, 1, -1, -1]])
    tokens = np.array([[5, 6, 7, 8, 9, 2, 2]])
    mask = np.array([[1, 1, 1, 0, 1, 0, 0]], dtype=np.uint8)
    assert position_ids_from_segments(segments).tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    # First token of each document, masked tokens and padding are not labels.
    assert labels_from_batch(tokens, segments, mask).tolist() == [[-100, 6, 7, -100, 9, -100, -100]]


def test_block_mask_isolates_packed_documents(workspace):
    from transformers import AutoModelForCausalLM

    import abacus_repro.model  # noqa: F401

    tokenizer = workspace["tokenizer"]
    model = AutoModelForCausalLM.from_pretrained(str(workspace["init"])).eval()
    first = tokenizer(CODE_SNIPPETS[2], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    second = tokenizer(TEXT_SNIPPETS[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    row = np.array([first + second], dtype=np.int32)
    segments = np.array([[0] * len(first) + [1] * len(second)], dtype=np.int32)
    arrays = {"tokens": row, "segments": segments, "loss_mask": np.ones_like(row, dtype=np.uint8)}
    batch = {k: torch.from_numpy(v) for k, v in make_batch(arrays, np.array([0])).items()}
    with torch.no_grad():
        packed = model(**batch).logits[0]
        alone = model(input_ids=torch.tensor([second])).logits[0]
        unmasked = model(input_ids=batch["input_ids"]).logits[0]
    torch.testing.assert_close(packed[len(first) :], alone, rtol=1e-5, atol=1e-5)
    # Without the block mask the second document would see the first: the test can tell the difference.
    assert not torch.allclose(unmasked[len(first) :], alone, atol=1e-3)
    # The first token of the second document is not predicted from the first document's </s>.
    assert batch["labels"][0, len(first)].item() == IGNORE_INDEX


def test_model_loss_matches_trainer_label_convention(workspace):
    """The trainer passes labels aligned with input_ids; the model must shift them (position t predicts t+1)."""
    from transformers import AutoModelForCausalLM

    import abacus_repro.model  # noqa: F401

    model = AutoModelForCausalLM.from_pretrained(str(workspace["init"])).eval()
    arrays = {k: np.load(workspace["data"]["sft"] / f"{k}.npy") for k in ("tokens", "segments", "loss_mask")}
    batch = {k: torch.from_numpy(v) for k, v in make_batch(arrays, np.arange(3)).items()}
    with torch.no_grad():
        out = model(**batch)
    logits, labels = out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), batch["labels"][:, 1:].reshape(-1)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100))


def test_loss_falls_and_outputs_are_written(workspace):
    out, state = run(workspace, "base", workspace["init"], "pretrain", "base", grad_accum=1)
    metrics = read_metrics(out / "metrics.jsonl")
    steps = [m for m in metrics if m["kind"] == "train"]
    assert len(steps) == state["phase_steps"] >= 20
    early = np.mean([m["loss"] for m in steps[:3]])
    late = np.mean([m["loss"] for m in steps[-3:]])
    assert late < early - 1.0, (early, late)
    validation = [m for m in metrics if m["kind"] == "validation"]
    if validation:
        assert validation[-1]["loss"] < validation[0]["loss"]
    assert (out / "loss.png").stat().st_size > 0 and (out / "lr.png").stat().st_size > 0
    assert (out / "model" / "model.safetensors").exists() and (out / "model" / "tokenizer.json").exists()
    assert read_trainer_state(out / "model")["phase"] == "base"
    assert steps[-1]["tokens"] > 0 and steps[-1]["targets"] <= steps[-1]["tokens"]


def test_two_runs_with_one_seed_are_identical(workspace):
    outs = [run(workspace, "cosine", workspace["init"], "pretrain", f"det{i}", seed=9)[0] for i in range(2)]
    losses = [[m["loss"] for m in read_metrics(o / "metrics.jsonl") if m["kind"] != "summary"] for o in outs]
    assert losses[0] == losses[1]
    # The whole model directory (weights, config, tokenizer, trainer state) is byte-identical.
    files = [sorted(p.name for p in (o / "model").iterdir()) for o in outs]
    assert files[0] == files[1] and "model.safetensors" in files[0]
    for name in files[0]:
        assert (outs[0] / "model" / name).read_bytes() == (outs[1] / "model" / name).read_bytes(), name
    other = run(workspace, "cosine", workspace["init"], "pretrain", "det_other", seed=10)[0]
    assert [m["loss"] for m in read_metrics(other / "metrics.jsonl") if m["kind"] != "summary"] != losses[0]


def test_anneal_continues_the_cosine_schedule_and_sft_runs_its_epochs(workspace):
    cosine_out, cosine_state = run(workspace, "cosine", workspace["init"], "pretrain", "chain_cosine")
    anneal_out, anneal_state = run(workspace, "anneal", cosine_out / "model", "pretrain", "chain_anneal")
    cosine_steps = cosine_state["phase_steps"]
    assert anneal_state["global_step_start"] == cosine_steps
    schedule = training_settings().train.schedule
    steps = [m for m in read_metrics(anneal_out / "metrics.jsonl") if m["kind"] == "train"]
    for record in steps:
        expected = wcl_lr(record["global_step"] - 1, schedule, cosine_steps, anneal_state["phase_steps"])
        assert record["lr"] == pytest.approx(expected)
    assert steps[-1]["lr"] == pytest.approx(schedule.lr_final)

    sft_out, sft_state = run(workspace, "sft", anneal_out / "model", "sft", "chain_sft")
    assert sft_state["epochs"] == 2 and sft_state["phase_steps"] == 2 * sft_state["steps_per_epoch"]
    sft_steps = [m for m in read_metrics(sft_out / "metrics.jsonl") if m["kind"] == "train"]
    assert {m["epoch"] for m in sft_steps} == {0, 1}
    # Only responses are targets: far fewer targets than tokens.
    assert sft_steps[-1]["targets"] < 0.7 * sft_steps[-1]["tokens"]


def test_anneal_needs_a_cosine_model(workspace):
    with pytest.raises(InputError, match=STATE_FILE):
        run(workspace, "anneal", workspace["init"], "pretrain", "bad_anneal")


def test_varlen_attention_trains_like_the_block_mask(workspace):
    """train.attention=varlen (the GPU default) is the block mask's computation: the same losses step by step."""
    outs = {
        mode: run(workspace, "cosine", workspace["init"], "pretrain", f"attn_{mode}", seed=9, attention=mode)[0]
        for mode in ("block_mask", "varlen")
    }
    metrics = {mode: read_metrics(out / "metrics.jsonl") for mode, out in outs.items()}
    assert [m["attention"] for m in metrics["varlen"] if m["kind"] == "summary"] == ["varlen"]
    assert [m["attention"] for m in metrics["block_mask"] if m["kind"] == "summary"] == ["block_mask"]
    losses = {mode: [m["loss"] for m in lines if m["kind"] == "train"] for mode, lines in metrics.items()}
    assert len(losses["varlen"]) == len(losses["block_mask"]) >= 20
    np.testing.assert_allclose(losses["varlen"], losses["block_mask"], rtol=1e-4)


def test_gradient_checkpointing_trains_like_the_plain_run(workspace):
    """Recomputing each block in the backward pass trades time for memory and must not change the losses."""
    plain = run(workspace, "cosine", workspace["init"], "pretrain", "ckpt_off", seed=9)[0]
    recomputed = run(
        workspace, "cosine", workspace["init"], "pretrain", "ckpt_on", seed=9, gradient_checkpointing=True
    )[0]
    losses = [
        [m["loss"] for m in read_metrics(o / "metrics.jsonl") if m["kind"] == "train"] for o in (plain, recomputed)
    ]
    assert len(losses[0]) >= 20
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_validation_loss_per_source_and_plain_packing(workspace):
    """Every source's held-out loss at step 0, every eval_every steps and at the end; plain packing trains (and is
    scored) without the document mask, so its losses differ from the block mask's from the first step."""
    runs = {
        mode: run(
            workspace, "cosine", workspace["init"], "pretrain", f"val_{mode}", 9, True, attention=mode, eval_every=5
        )
        for mode in ("block_mask", "plain")
    }
    for mode, (out, state) in runs.items():
        metrics = read_metrics(out / "metrics.jsonl")
        by_source = [m for m in metrics if m["kind"] == "validation" and "source" in m]
        total = state["phase_steps"]
        expected_steps = [0, *range(5, total, 5), total]
        for source in VALIDATION_SOURCES:
            lines = [m for m in by_source if m["source"] == source]
            assert [m["step"] for m in lines] == expected_steps, (mode, source)
            assert all(np.isfinite(m["loss"]) for m in lines)
            assert lines[-1]["loss"] < lines[0]["loss"], (mode, source)  # the model learns the sources
        assert state["validation_loss_by_source"] == {m["source"]: m["loss"] for m in by_source[-4:]}
        assert [m["attention"] for m in metrics if m["kind"] == "summary"] == [mode]
        # The lines sit in step order between the training steps.
        steps = [m["step"] for m in metrics if m["kind"] in ("train", "validation")]
        assert steps == sorted(steps)
    losses = {
        mode: [m["loss"] for m in read_metrics(out / "metrics.jsonl") if m["kind"] == "train"]
        for mode, (out, _) in runs.items()
    }
    assert losses["plain"][0] != pytest.approx(losses["block_mask"][0], rel=1e-6)
