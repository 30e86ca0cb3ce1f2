"""Rule eval_general: general benchmarks (MMLU, HellaSwag, ARC-e, BBH, C-Eval, CMMLU, GSM8K) through lm-eval."""

from abacus_repro.evaluate.general import run_eval_general
from abacus_repro.rules import run_rule

run_rule(snakemake, run_eval_general)  # noqa: F821  (injected by Snakemake's script directive)
