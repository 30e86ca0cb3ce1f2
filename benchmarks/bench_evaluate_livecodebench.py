"""Benchmark: grading LiveCodeBench samples, one sandbox process per test (baseline) against all of a sample's
tests in one sandbox process (the batch API), sequentially and with worker threads.

The problems are the hand-written release-format sample (tests/integration/data/), each given extra stdin tests
(seeded), graded with the reference solutions; every side must reach the same verdicts. Figures to compare are
the ratios:
    .venv/bin/python benchmarks/bench_evaluate_livecodebench.py [--copies 4] [--tests 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from abacus_repro.evaluate import _lcb_check
from abacus_repro.evaluate import livecodebench as lcb
from abacus_repro.sandbox import detect_isolation, run_python

DATA = Path(__file__).resolve().parents[1] / "tests" / "integration" / "data"
LIMITS = lcb.GradingLimits(timeout_s=6.0, memory_mb=512)


def workload(copies: int, extra_tests: int, seed: int = 0) -> list[tuple[lcb.Problem, str]]:
    """The sum-of-two stdin problem with ``extra_tests`` more tests, ``copies`` times, with its reference."""
    problems = {p.question_id: p for p in lcb.load_problems([DATA / "livecodebench_sample.jsonl"])}
    solutions = {
        row["question_id"]: row["code"]
        for row in map(json.loads, (DATA / "livecodebench_sample_solutions.jsonl").read_text().splitlines())
    }
    rng = random.Random(seed)
    base = problems["sample_a"]
    jobs = []
    for copy in range(copies):
        tests = list(base.private_tests)
        for _ in range(extra_tests):
            a, b = rng.randint(-(10**9), 10**9), rng.randint(-(10**9), 10**9)
            tests.append(lcb.Test(f"{a} {b}\n", f"{a + b}\n", "stdin"))
        jobs.append((replace(base, question_id=f"copy{copy}", private_tests=tests), solutions["sample_a"]))
    return jobs


def grade_per_test(problem: lcb.Problem, code: str, isolation: str) -> bool:
    """Baseline: a fresh sandbox process per test, stdin piped in, output compared like LiveCodeBench."""
    for test in problem.tests:
        result = run_python(code, stdin_data=test.input, timeout=LIMITS.timeout_s, isolation=isolation)
        if result.status != "ok" or not _lcb_check._abacus_same_stdout(result.stdout, test.output):
            return False
    return True


def timed(label: str, function, jobs, workers: int) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    if workers == 1:
        verdicts = [function(problem, code) for problem, code in jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(lambda job: function(*job), jobs))
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.2f} s", flush=True)
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--tests", type=int, default=20, help="extra tests per problem")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    isolation = detect_isolation()
    jobs = workload(args.copies, args.tests)
    n_tests = sum(len(problem.tests) for problem, _ in jobs)

    def batched(problem, code):
        return lcb.grade(problem, code, LIMITS, isolation)["passed"]

    per_test, base_verdicts = timed("one process per test", lambda p, c: grade_per_test(p, c, isolation), jobs, 1)
    batch, batch_verdicts = timed("one process per sample", batched, jobs, 1)
    pooled, pooled_verdicts = timed(f"one process per sample, {args.workers} workers", batched, jobs, args.workers)
    assert base_verdicts == batch_verdicts == pooled_verdicts == [True] * len(jobs)
    report = {
        "benchmark": "evaluate_livecodebench_grading",
        "isolation": isolation,
        "cores": os.cpu_count(),
        "samples": len(jobs),
        "tests": n_tests,
        "tests_per_s": {
            "per_test_process": round(n_tests / per_test, 1),
            "batched": round(n_tests / batch, 1),
            f"batched_{args.workers}_workers": round(n_tests / pooled, 1),
        },
        "batched_over_per_test": round(per_test / batch, 1),
        "workers_over_sequential": round(batch / pooled, 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
