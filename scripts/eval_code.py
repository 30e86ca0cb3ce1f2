"""Rule eval_code: greedy samples from one model on HumanEval(+) or MBPP(+), scored by evalplus."""

from pathlib import Path

from abacus_repro.evaluate.humaneval import evaluate_model, write_result
from abacus_repro.logging_setup import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - Snakemake injects `snakemake`
benchmark = snakemake.wildcards.benchmark  # noqa: F821
result = evaluate_model(
    snakemake.params.model,  # noqa: F821
    benchmark,
    snakemake.params.data[benchmark],  # noqa: F821
    snakemake.params.eval,  # noqa: F821
    work_dir=Path(snakemake.output.result).parent / "work",  # noqa: F821
    samples_path=snakemake.output.samples,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    parallel=max(2, snakemake.threads),  # noqa: F821 - evalplus's test processes mostly wait on each other
)
write_result(snakemake.output.result, result)  # noqa: F821
