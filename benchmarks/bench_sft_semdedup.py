"""Benchmark: SemDeDup time at 1x, 2x and 4x items, against comparing all pairs without clusters, and the
embedding throughput of the real encoder (the part that dominates a real run).

Synthetic 384-dimensional embeddings (the encoder's size) with near-duplicate families; every side runs in this
process, so the figures to compare are the ratios:
    .venv/bin/python benchmarks/bench_sft_semdedup.py [--items 8000] [--per-cluster 400] [--texts 128]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from abacus_repro.sft.semdedup import Clustering, decide, kmeans, normalise

DIM = 384


def embeddings(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(64, DIM))
    rows = []
    while len(rows) < n:
        base = topics[rng.integers(len(topics))] + 0.7 * rng.normal(size=DIM)
        for _ in range(int(rng.integers(1, 5))):
            rows.append(base + rng.uniform(0, 12) * rng.normal(size=DIM) / math.sqrt(DIM))
    return normalise(np.asarray(rows[:n]))


def timed(function, *args, repeats: int = 3):
    """Best of ``repeats`` runs: the least disturbed by whatever else the machine is doing."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, value


def semdedup_seconds(x: np.ndarray, clusters: int, rule: str) -> tuple[float, float, int]:
    cluster_s, clustering = timed(kmeans, x, clusters, 0, 50)
    dedup_s, decision = timed(decide, x, clustering, 0.05, rule, "hard")
    return cluster_s, dedup_s, int(decision.removed.sum())


def all_pairs_seconds(x: np.ndarray, rule: str) -> tuple[float, int]:
    """The same rule with one cluster holding everything: every pair of the data set is compared."""
    one = Clustering(np.zeros(len(x), dtype=np.int64), normalise(x.mean(axis=0, keepdims=True)))
    seconds, decision = timed(decide, x, one, 0.05, rule, "hard")
    return seconds, int(decision.removed.sum())


def encoder_texts_per_second(n: int, max_tokens: int) -> float:
    from abacus_repro.settings import SemDeDupSettings
    from abacus_repro.sft.semdedup import sentence_embedder

    text = (
        "Write a Python function `merge(a, b)` that merges two sorted lists.\n\n"
        + "def merge(a, b):\n"
        + ("    out.append(min(a[0], b[0]))  # keep the smaller head\n" * 40)
    )
    embed = sentence_embedder(SemDeDupSettings(batch_size=64, max_tokens=max_tokens), threads=None)
    embed(["warm up"])
    seconds, _ = timed(embed, [f"{i} {text}" for i in range(n)], repeats=1)
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8000)
    parser.add_argument("--per-cluster", type=int, default=400, help="items per cluster (clusters grow with items)")
    parser.add_argument("--texts", type=int, default=128, help="texts for the encoder throughput; 0 skips it")
    args = parser.parse_args()
    report: dict = {"benchmark": "sft_semdedup", "dim": DIM, "base_items": args.items, "scales": {}}
    base = None
    semdedup_seconds(embeddings(500), 2, "paper")  # warm-up: imports and thread pools are not timed
    for scale in (1, 2, 4):
        x = embeddings(args.items * scale, seed=scale)
        clusters = max(1, len(x) // args.per_cluster)
        entry = {"items": len(x), "clusters": clusters}
        for rule in ("reference", "paper"):
            cluster_s, dedup_s, removed = semdedup_seconds(x, clusters, rule)
            pairs_s, pairs_removed = all_pairs_seconds(x, rule)
            entry[rule] = {
                "kmeans_s": round(cluster_s, 3),
                "dedup_s": round(dedup_s, 3),
                "all_pairs_s": round(pairs_s, 3),
                "all_pairs_over_clustered_dedup": round(pairs_s / dedup_s, 1),
                "removed_fraction": round(removed / len(x), 4),
                "removed_fraction_all_pairs": round(pairs_removed / len(x), 4),
            }
        total = entry["reference"]["kmeans_s"] + entry["reference"]["dedup_s"]
        base = base or total
        entry["time_over_1x"] = round(total / base, 2)
        report["scales"][f"{scale}x"] = entry
    if args.texts:
        short = encoder_texts_per_second(args.texts, 128)
        full = encoder_texts_per_second(args.texts, 256)
        report["encoder_texts_per_s"] = {"max_tokens_128": round(short, 1), "max_tokens_256": round(full, 1)}
        report["encoder_128_over_256"] = round(short / full, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
