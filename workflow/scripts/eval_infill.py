"""Rule eval_infill: one model fills in spans of HumanEval's canonical solutions; HumanEval's tests score them."""

from abacus_repro.evaluate.infill import run_eval_infill
from abacus_repro.rules import run_rule

run_rule(snakemake, run_eval_infill)  # noqa: F821  (injected by Snakemake's script directive)
