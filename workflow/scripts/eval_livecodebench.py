"""Rule eval_livecodebench: greedy samples from one model on LiveCodeBench problems, graded in the sandbox."""

from abacus_repro.evaluate.livecodebench import run_eval_livecodebench
from abacus_repro.rules import run_rule

run_rule(snakemake, run_eval_livecodebench)  # noqa: F821  (injected by Snakemake's script directive)
