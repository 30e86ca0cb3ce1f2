"""Rule eval_code: greedy samples from one model on HumanEval(+) or MBPP(+), scored by evalplus."""

from pathlib import Path

from abacus_repro.evaluate.humaneval import evaluate_model, write_result
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
# The data file is an input where it exists; a configured one that is missing keeps the path looked for, so the
# benchmark is reported skipped naming it; no path at all (None) lets evalplus download its release.
data = {**smk.params.absent, **smk.input}
result = evaluate_model(
    smk.params.model,
    smk.wildcards.benchmark,
    data.get("data"),
    smk.params.eval,
    work_dir=Path(smk.output.result).parent / "work",
    samples_path=smk.output.samples,
    threads=smk.threads,
    parallel=max(2, smk.threads),  # evalplus's test processes mostly wait on each other
)
write_result(smk.output.result, result)
