"""Benchmark: training tokens/s on CPU, and the block attention mask's cost against plain causal packing.

The tiny default's model (config/config.yaml: hidden 128, 4 layers, vocab 4096) on packed rows of 256 tokens,
micro batch 8, fp32, AdamW, the trainer's own optimizer step. Three variants, same rows, same process, each
timed over the same number of steps after warm-up:

* plain causal packing (the baseline: documents see each other, positions run through the row);
* the block mask (document_ids: block-diagonal causal attention, positions restarting per document), the
  trainer's default, exact on CPU;
* the block mask with gradient checkpointing (memory for time);
* varlen attention (``train.attention: varlen``, the GPU default) with its CPU kernel, one causal SDPA call
  per document: exact, and here to show what the per-document loop costs on CPU, which is why ``auto`` keeps
  the block mask on CPU.

Ratios are tokens/s over the baseline's. ``--paper-shape`` also times one forward+backward step of a
2.7B-shaped model at 1 row of 512 tokens (slow on CPU; MFU belongs on a GPU machine).

    .venv/bin/python benchmarks/bench_pretrain_train.py [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from abacus_repro.config import load_config
from abacus_repro.model import MiniCPMConfig, MiniCPMForCausalLM, set_packed_attention
from abacus_repro.pretrain.data import make_batch
from abacus_repro.pretrain.trainer import build_optimizer


def packed_rows(
    n_rows: int, seq_len: int, vocab: int, seed: int = 0, lengths: tuple[int, int] = (20, 400)
) -> dict[str, np.ndarray]:
    """Rows of seeded documents, lengths uniform in ``lengths`` (default: the tiny run's mix), cut at row ends."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, vocab, size=(n_rows, seq_len), dtype=np.int32)
    segments = np.zeros((n_rows, seq_len), dtype=np.int32)
    for row in range(n_rows):
        position, piece = 0, 0
        while position < seq_len:
            length = int(rng.integers(*lengths))
            segments[row, position : position + length] = piece
            position, piece = position + length, piece + 1
    return {"tokens": tokens, "segments": segments, "loss_mask": np.ones_like(tokens, dtype=np.uint8)}


class Variant:
    """One model + optimizer trained step by step, timing only its own steps."""

    def __init__(self, model, block_mask: bool, varlen: bool = False):
        self.model, self.block_mask = model, block_mask
        if varlen:
            set_packed_attention(model, "varlen")
        self.optimizer = build_optimizer(model, 1e-3, 0.1)
        self.elapsed, self.tokens = 0.0, 0

    def step(self, batch: dict, timed: bool) -> None:
        batch = dict(batch)
        if not self.block_mask:
            batch.pop("document_ids")
            batch.pop("position_ids")
        start = time.perf_counter()
        loss = self.model(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if timed:
            self.elapsed += time.perf_counter() - start
            self.tokens += batch["input_ids"].numel()

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed


def run(variants: list[Variant], arrays, steps: int, micro: int) -> None:
    """Variants take turns step by step, so load from other processes falls on all of them alike."""
    rows = np.arange(len(arrays["tokens"]))
    for step in range(steps + 2):  # two warm-up steps
        picked = rows[(step * micro) % len(rows) :][:micro]
        batch = {k: torch.from_numpy(v) for k, v in make_batch(arrays, picked).items()}
        for variant in variants:
            variant.step(batch, timed=step >= 2)


def fresh_model(config: MiniCPMConfig, checkpointing: bool = False):
    torch.manual_seed(0)
    model = MiniCPMForCausalLM(config).train()
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paper-shape", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load_config()  # config/config.yaml as the workflow resolves it (schema defaults filled)
    model_settings = {k: v for k, v in settings["model"].items() if k != "pretrained"}
    config = MiniCPMConfig(vocab_size=4096, pad_token_id=3, **model_settings)
    seq_len, micro = int(settings["pack"]["seq_len"]), int(settings["train"]["micro_batch_size"])
    arrays = packed_rows(micro * 8, seq_len, config.vocab_size)
    causal = Variant(fresh_model(config), block_mask=False)
    block = Variant(fresh_model(config), block_mask=True)
    checkpointed = Variant(fresh_model(config, checkpointing=True), block_mask=True)
    varlen = Variant(fresh_model(config), block_mask=True, varlen=True)
    run([causal, block, checkpointed, varlen], arrays, args.steps, micro)
    causal, block, checkpointed = causal.tokens_per_s, block.tokens_per_s, checkpointed.tokens_per_s
    varlen = varlen.tokens_per_s
    result = {
        "model": f"hidden {config.hidden_size}, {config.num_hidden_layers} layers, vocab {config.vocab_size}",
        "rows": f"{micro} x {seq_len}",
        "threads": args.threads,
        "causal_tokens_per_s": round(causal),
        "block_mask_tokens_per_s": round(block),
        "block_mask_checkpointing_tokens_per_s": round(checkpointed),
        "varlen_reference_tokens_per_s": round(varlen),
        "block_mask_over_causal": round(block / causal, 3),
        "checkpointing_over_block_mask": round(checkpointed / block, 3),
        "varlen_reference_over_block_mask": round(varlen / block, 3),
    }
    if args.paper_shape:
        paper = MiniCPMConfig(
            vocab_size=122753, hidden_size=2304, intermediate_size=5760, num_hidden_layers=40, num_attention_heads=36,
            num_key_value_heads=36, dim_model_base=256, pad_token_id=0,
        )  # fmt: skip
        model = fresh_model(paper, checkpointing=True)
        big = packed_rows(3, 512, paper.vocab_size)
        variant = Variant(model, block_mask=True)
        run([variant], big, 1, 1)
        result["paper_shape_tokens_per_s_cpu"] = round(variant.tokens_per_s, 1)
        result["paper_shape_parameters"] = sum(p.numel() for p in model.parameters())
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
