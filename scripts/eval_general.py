"""Rule eval_general: general benchmarks (MMLU, HellaSwag, ARC-e, BBH, C-Eval, CMMLU, GSM8K) through lm-eval."""

from pathlib import Path

from abacus_repro.evaluate.general import evaluate_model
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - Snakemake injects `snakemake`
result = evaluate_model(
    snakemake.params.model,  # noqa: F821
    snakemake.params.eval,  # noqa: F821
    snakemake.params.data["shared_data"],  # noqa: F821
    work_dir=Path(snakemake.output.result).parent / "work",  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
write_json(snakemake.output.result, result)  # noqa: F821
