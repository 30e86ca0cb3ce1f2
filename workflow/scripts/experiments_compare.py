"""Rule experiments_compare: the variants of the recipe side by side (validation loss per source over seeds,
evaluation scores, cost), as comparison.md, comparison.json and curves.png."""

from abacus_repro.pretrain.experiments import run_experiments_compare
from abacus_repro.rules import run_rule

run_rule(snakemake, run_experiments_compare)  # noqa: F821  (injected by Snakemake's script directive)
