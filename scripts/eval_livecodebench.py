"""Rule eval_livecodebench: greedy samples from one model on LiveCodeBench problems, graded in the sandbox."""

from abacus_repro.evaluate.livecodebench import evaluate_model
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - Snakemake injects `snakemake`
result = evaluate_model(
    snakemake.params.model,  # noqa: F821
    snakemake.params.data["livecodebench"],  # noqa: F821
    snakemake.params.eval,  # noqa: F821
    snakemake.params.data["livecodebench_fewshot"],  # noqa: F821
    samples_path=snakemake.output.samples,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
write_json(snakemake.output.result, result)  # noqa: F821
