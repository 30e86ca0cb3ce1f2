"""Rule eval_summary: summary.json, the seed's tables with every evaluated model's row (summary.md), the plot."""

from abacus_repro.evaluate.summary import run_eval_summary
from abacus_repro.rules import run_rule

run_rule(snakemake, run_eval_summary)  # noqa: F821  (injected by Snakemake's script directive)
