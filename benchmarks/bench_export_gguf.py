"""Benchmark: GGUF export of a random MiniCPM — streaming writer vs the all-in-memory one, and throughput.

Baseline and candidate run in this process on the same model: the round-1 way of writing (every converted tensor
handed to the gguf writer, then written at once) against the streaming writer (tensor infos first, then one
tensor at a time). Both files must be byte-identical. Also timed: Q8_0 (our writer), Q4_K_M (llama.cpp's
quantiser from the F16 file) and, unless --no-verify, the verification against the Hugging Face model.

    .venv/bin/python benchmarks/bench_export_gguf.py                        # hidden 1024, 8 layers
    .venv/bin/python benchmarks/bench_export_gguf.py --hidden 128 --layers 4 --intermediate 352 --vocab 4096
    .venv/bin/python benchmarks/bench_export_gguf.py --paper --no-verify --no-baseline  # 2.7B shapes, ~6 GB RAM
"""

from __future__ import annotations

import argparse
import json
import os
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

# MiniCPM-2B (the Abacus checkpoint's architecture): tied embeddings, MHA with head_dim 64.
PAPER = {"hidden": 2304, "layers": 40, "intermediate": 5760, "vocab": 122753, "heads": 36}


def tokenizer_dir(root: Path) -> Path:
    """A small byte-level BPE trained by the package on standard-library sources (ids above it are padding)."""
    from abacus_repro.model.tokenizer import train_tokenizer

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("*.py"))[:60]]
    return train_tokenizer(texts, 1024, root / "tokenizer", seed=0)


def random_model(args, dtype: torch.dtype):
    from abacus_repro.model.configuration import MiniCPMConfig
    from abacus_repro.model.modeling import MiniCPMForCausalLM

    config = MiniCPMConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=1024,
        scale_emb=12,
        scale_depth=1.4,
        dim_model_base=256,
        initializer_range=0.02,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        model = MiniCPMForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return model


def write_all_in_memory(model, tok_dir: Path, out_path: Path, out_type: str) -> None:
    """The round-1 writer: every converted tensor is kept by GGUFWriter until the single write at the end."""
    import gguf

    from abacus_repro.export.tensor_types import encode, plan_written_type
    from abacus_repro.export.tensors import ARCH, export_tensors
    from abacus_repro.export.vocab import add_tokenizer_metadata, read_vocabulary
    from abacus_repro.export.writer import add_model_metadata

    config = model.config
    writer = gguf.GGUFWriter(str(out_path), ARCH)
    add_model_metadata(writer, tok_dir.name, config, out_type)
    add_tokenizer_metadata(writer, read_vocabulary(tok_dir, config.vocab_size), config.vocab_size)
    for name, array in export_tensors(model.state_dict(), config):
        written = plan_written_type(name, array.shape, out_type)["written"]
        raw = gguf.GGMLQuantizationType[written] if written not in ("F32", "F16") else None
        writer.add_tensor(name, encode(array, written), raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


CPU_S: dict[str, float] = {}


def measured(fn, *args, trace: bool = False, label: str | None = None, **kwargs) -> tuple[float, float]:
    """(wall seconds, peak MiB allocated by Python/numpy during the call; 0 when not traced).

    The process's CPU seconds (all threads, llama.cpp's included) go to CPU_S[label]: on a shared machine wall
    time depends on the neighbours, CPU time much less.
    """
    if trace:
        tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    if label:
        CPU_S[label] = time.process_time() - cpu
    peak = 0.0
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--intermediate", type=int, default=2560)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--paper", action="store_true", help="MiniCPM-2B shapes (2.7B parameters)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the all-in-memory writer")
    parser.add_argument("--no-verify", action="store_true", help="skip verification against the HF model")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    if args.paper:
        for key, value in PAPER.items():
            setattr(args, key, value)

    from abacus_repro.export import export_gguf, verify_exports
    from abacus_repro.settings import VerifySettings

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        tok = tokenizer_dir(root)
        start = time.perf_counter()
        # bf16 weights (as the published checkpoint) halve the memory of the paper-scale run; the writer converts
        # each tensor to float32 on its own, so the cost per tensor is the same.
        model = random_model(args, torch.bfloat16 if args.paper else torch.float32)
        init_s = time.perf_counter() - start
        n_params = sum(p.numel() for p in model.parameters())
        result = {"benchmark": "gguf_export", "params": n_params, "shape": {k: getattr(args, k) for k in PAPER}}
        result["model_init_s"] = round(init_s, 2)
        trace = not args.paper

        paths = {t: root / f"model-{t}.gguf" for t in ("F16", "Q8_0", "Q4_K_M")}
        if not args.paper:
            export_gguf(tok, paths["F16"], "F16", model=model)  # warm-up: imports, tokenizer parsing
        seconds, peak = measured(export_gguf, tok, paths["F16"], "F16", model=model, trace=trace, label="F16")
        result["F16"] = {"s": seconds, "peak_mib": peak}
        if not args.no_baseline:
            # Interleaved repeats, best of each: the ratio should not depend on which side ran first.
            base_path = root / "baseline-F16.gguf"
            streaming, baseline = [(seconds, peak)], []
            for _ in range(2):
                baseline.append(measured(write_all_in_memory, model, tok, base_path, "F16", trace=trace))
                streaming.append(measured(export_gguf, tok, paths["F16"], "F16", model=model, trace=trace))
            identical = base_path.read_bytes() == paths["F16"].read_bytes()
            assert identical, "the streaming writer changed the file"
            base_path.unlink()
            stream_s, stream_peak = min(s for s, _ in streaming), min(m for _, m in streaming)
            base_s, base_peak = min(s for s, _ in baseline), min(m for _, m in baseline)
            result["writer_baseline_over_streaming"] = {
                "time": round(base_s / stream_s, 2),
                "peak_memory": round(base_peak / max(stream_peak, 1e-9), 2),
                "baseline_peak_mib": round(base_peak, 1),
                "streaming_peak_mib": round(stream_peak, 1),
                "files_identical": identical,
            }
        seconds, peak = measured(export_gguf, tok, paths["Q8_0"], "Q8_0", model=model, trace=trace, label="Q8_0")
        result["Q8_0"] = {"s": seconds, "peak_mib": peak}
        records = []
        seconds, _ = measured(
            lambda: records.extend(export_gguf(tok, paths["Q4_K_M"], "Q4_K_M", model=model, source=paths["F16"])),
            label="Q4_K_M",
        )
        result["Q4_K_M"] = {"s": seconds, "fallbacks": sum(r["fallback"] for r in records)}
        for out_type, path in paths.items():
            size = path.stat().st_size
            entry = result[out_type]
            entry.update(
                s=round(entry["s"], 2),
                cpu_s=round(CPU_S[out_type], 2),
                size_bytes=size,
                bits_per_param=round(8 * size / n_params, 3),
                mparams_per_s=round(n_params / entry["s"] / 1e6, 1),
            )
            if "peak_mib" in entry:
                entry["peak_mib"] = round(entry["peak_mib"], 1)
        if not args.no_verify:
            model = model.float()
            start, cpu = time.perf_counter(), time.process_time()
            report = verify_exports(list(paths.values()), tok, root / "verify.json", VerifySettings(), 2, model=model)
            result["verify_all_three_s"] = round(time.perf_counter() - start, 2)
            result["verify_all_three_cpu_s"] = round(time.process_time() - cpu, 2)
            result["verify"] = {
                t: {k: round(r["vs_hf"][k], 4) for k in ("top1_agreement", "max_abs_diff")}
                for t, r in report["files"].items()
            }
        result["load_average_1min"] = round(os.getloadavg()[0], 2)  # > 2 on 2 cores: wall times are inflated
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
