"""Rule eval_code: greedy samples from one model on HumanEval(+) or MBPP(+), scored by evalplus."""

from abacus_repro.evaluate.humaneval import run_eval_code
from abacus_repro.rules import run_rule

run_rule(snakemake, run_eval_code)  # noqa: F821  (injected by Snakemake's script directive)
