"""Rule eval_livecodebench: greedy samples from one model on LiveCodeBench problems, graded in the sandbox."""

from abacus_repro.evaluate.livecodebench import evaluate_model
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
# Release files and exemplars are inputs where they exist; missing ones keep the paths looked for, so the
# benchmark is reported skipped naming them; one not configured at all is None.
data = {**smk.params.absent, **smk.input}
result = evaluate_model(
    smk.params.model,
    data.get("releases"),
    smk.params.eval,
    data.get("fewshot"),
    samples_path=smk.output.samples,
    threads=smk.threads,
)
write_json(smk.output.result, result)
