"""Benchmark: model FLOPs utilisation (MFU) of a training step, on a GPU for the paper's 2.7B shape.

A MiniCPM-2B-shaped model (hidden 2304, 40 layers, 36 heads, vocab 122753: 2.7B parameters) trains for a few
steps on packed rows of seeded documents, bf16 autocast, AdamW, gradient checkpointing as in
config/abacus-2.7b.yaml, once per attention mode (the block mask and varlen). Reported per mode: tokens/s,
achieved TFLOP/s and MFU, plus varlen's tokens/s as a ratio over the block mask's, both timed in this process.

FLOPs per token follow PaLM's convention (Chowdhery et al. 2022, appendix B): 6 N for the weights (N counts
the tied embedding once, since the output projection multiplies by it) plus 12 L d T for attention, with T the
row length, whatever the document boundaries. Recomputation under gradient checkpointing is not counted, so
this is model FLOPs utilisation, not hardware FLOPs utilisation.

Peak throughput: ``--peak-tflops`` if given; for a known GPU the dense bf16 figure from its data sheet; else
(CPU, unknown GPU) a large matmul timed in this process in the run's dtype, so the ratio is against what this
machine really does.

    .venv/bin/python benchmarks/bench_pretrain_mfu.py                      # GPU: paper shape, 4096 tokens/row
    .venv/bin/python benchmarks/bench_pretrain_mfu.py --shape tiny --steps 3   # CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np
import torch
from bench_pretrain_train import packed_rows  # this folder is on sys.path when the script runs

from abacus_repro.model import MiniCPMConfig, MiniCPMForCausalLM, set_packed_attention
from abacus_repro.pretrain.data import make_batch
from abacus_repro.pretrain.trainer import build_optimizer

SHAPES = {
    # openbmb/MiniCPM-2B's config.json (the model the recipe continues).
    "paper": {
        "vocab_size": 122753, "hidden_size": 2304, "intermediate_size": 5760, "num_hidden_layers": 40,
        "num_attention_heads": 36, "num_key_value_heads": 36, "dim_model_base": 256, "scale_emb": 12,
        "scale_depth": 1.4,
    },
    "tiny": {
        "vocab_size": 4096, "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "dim_model_base": 64, "scale_emb": 12,
        "scale_depth": 1.4,
    },
}  # fmt: skip

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, in TFLOP/s.
KNOWN_PEAKS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0}


def flops_per_token(config: MiniCPMConfig, n_parameters: int, seq_len: int) -> float:
    """Training FLOPs per token, PaLM's convention: 6 N + 12 L d T."""
    return 6.0 * n_parameters + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


def measured_peak_tflops(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """The best of a few large square matmuls in this process: what this device really sustains."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e12


def datasheet_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in KNOWN_PEAKS.items() if key in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(config, mode, arrays, args, device, dtype) -> dict:
    """Train a fresh model a few steps under one attention mode; tokens/s over the timed steps."""
    torch.manual_seed(0)
    model = MiniCPMForCausalLM(config).to(device).train()
    if args.checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    set_packed_attention(model, mode)
    optimizer = build_optimizer(model, 1e-4, 0.1)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    rows = np.arange(len(arrays["tokens"]))
    elapsed, tokens = 0.0, 0
    for step in range(args.steps + args.warmup):
        picked = rows[(step * args.micro) % len(rows) :][: args.micro]
        batch = {k: torch.from_numpy(v).to(device) for k, v in make_batch(arrays, picked).items()}
        synchronize(device)
        start = time.perf_counter()
        with autocast:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= args.warmup:
            elapsed += time.perf_counter() - start
            tokens += batch["input_ids"].numel()
    n_parameters = sum(p.numel() for p in model.parameters())
    peak_memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return {"tokens_per_s": tokens / elapsed, "parameters": n_parameters, "peak_memory_gib": peak_memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="paper")
    parser.add_argument("--seq-len", type=int, default=None, help="row length (paper 4096, tiny 256)")
    parser.add_argument("--micro", type=int, default=None, help="rows per step (paper 4, tiny 8)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (CPU runs only)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.set_num_threads(args.threads)
    paper = args.shape == "paper"
    args.seq_len = args.seq_len or (4096 if paper else 256)
    args.micro = args.micro or (4 if paper else 8)
    config = MiniCPMConfig(pad_token_id=0, max_position_embeddings=max(4096, args.seq_len), **SHAPES[args.shape])
    # Documents 64 to 2048 tokens long: the spread of code files at paper scale.
    arrays = packed_rows(args.micro * (args.steps + args.warmup), args.seq_len, config.vocab_size, lengths=(64, 2048))

    peak, peak_source = args.peak_tflops, "--peak-tflops"
    if peak is None:
        peak, peak_source = datasheet_peak_tflops(device), "data sheet (dense bf16)"
    if peak is None:
        peak, peak_source = measured_peak_tflops(device, dtype), f"measured {dtype} matmul in this process"

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} threads)",
        "dtype": str(dtype).removeprefix("torch."),
        "shape": args.shape,
        "rows": f"{args.micro} x {args.seq_len}",
        "steps_timed": args.steps,
        "gradient_checkpointing": args.checkpointing,
        "peak_tflops": round(peak, 2),
        "peak_source": peak_source,
    }
    for mode in ("block_mask", "varlen"):
        timing = time_mode(config, mode, arrays, args, device, dtype)
        achieved = timing["tokens_per_s"] * flops_per_token(config, timing["parameters"], args.seq_len) / 1e12
        result["parameters"] = timing["parameters"]
        result[mode] = {
            "tokens_per_s": round(timing["tokens_per_s"], 1),
            "achieved_tflops": round(achieved, 3),
            "mfu": round(achieved / peak, 4),
            "peak_memory_gib": None if timing["peak_memory_gib"] is None else round(timing["peak_memory_gib"], 2),
        }
    result["varlen_over_block_mask"] = round(result["varlen"]["tokens_per_s"] / result["block_mask"]["tokens_per_s"], 3)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
