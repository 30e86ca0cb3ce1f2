"""Benchmark: tokenization for packing, tokens/s — batched and multi-process against one call per document.

Input: real Python source (the standard library's .py files, sorted, up to --mb megabytes) and the run's own
byte-level BPE (results/model/tokenizer if present, else one trained here on the same files). Baseline: one
tokenizer call per document (what a naive loop does). Candidates: the packer's batched calls in one process
(the Rust tokenizer parallelises inside a call) and the same chunks over 2 worker processes. All three must
give identical ids; ratios are tokens/s over the baseline's.

    .venv/bin/python benchmarks/bench_pretrain_tokenize.py [--mb 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import tempfile
import time
from pathlib import Path

from abacus_repro.tokenization import load_tokenizer
from abacus_repro.tokenization.pack import _encode_all

REPO = Path(__file__).resolve().parents[1]


def stdlib_texts(megabytes: float) -> list[str]:
    texts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        size += len(text.encode())
        if size >= megabytes * 1e6:
            break
    return texts


def tokenizer_for(texts: list[str]):
    saved = REPO / "results" / "model" / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return load_tokenizer(saved), str(saved)
    from abacus_repro.model.tokenizer import train_tokenizer

    directory = Path(tempfile.mkdtemp()) / "tokenizer"
    train_tokenizer(iter(texts), 4096, directory, seed=0)
    return load_tokenizer(directory), "trained here (vocab 4096)"


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def measure(tokenizer, texts: list[str], workers: int) -> dict:
    per_doc, t_doc = timed(lambda: [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts])
    batched, t_batch = timed(lambda: _encode_all(tokenizer, texts, "batched", workers=1))
    multi, t_multi = timed(lambda: _encode_all(tokenizer, texts, "processes", workers=workers))
    tokens = sum(len(ids) for ids in per_doc)
    assert per_doc == batched == multi, "all three paths must give identical ids"
    return {
        "documents": len(texts),
        "megabytes": round(sum(len(t.encode()) for t in texts) / 1e6, 2),
        "tokens": tokens,
        "per_document_tokens_per_s": round(tokens / t_doc),
        "batched_tokens_per_s": round(tokens / t_batch),
        f"processes_{workers}_tokens_per_s": round(tokens / t_multi),
        "batched_over_per_document": round(t_doc / t_batch, 2),
        f"processes_{workers}_over_per_document": round(t_doc / t_multi, 2),
        "identical_ids": True,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    texts = stdlib_texts(args.mb)
    tokenizer, origin = tokenizer_for(texts)
    # Whole files (13 kB on average) and the same text as short pieces (paragraphs, like posts or SFT pairs),
    # where a call per document pays its fixed cost thousands of times.
    pieces = [p for text in texts for p in text.split("\n\n") if p.strip()]
    result = {
        "tokenizer": origin,
        "files": measure(tokenizer, texts, args.workers),
        "paragraphs": measure(tokenizer, pieces, args.workers),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
