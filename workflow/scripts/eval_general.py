"""Rule eval_general: general benchmarks (MMLU, HellaSwag, ARC-e, BBH, C-Eval, CMMLU, GSM8K) through lm-eval."""

from pathlib import Path

from abacus_repro.evaluate.general import evaluate_model
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
# Every data location the tasks read, by name: an input where it exists, else the path looked for, so that
# benchmark is reported skipped naming it. Given whole, it takes the place of the harness's defaults.
data = {name: path for name, path in {**smk.params.absent, **smk.input}.items() if name != "model"}
settings = {**smk.params.eval, "general": {**smk.params.eval["general"], "data": data}}
result = evaluate_model(
    smk.params.model,
    settings,
    smk.params.shared_data,
    work_dir=Path(smk.output.result).parent / "work",
    threads=smk.threads,
)
write_json(smk.output.result, result)
