"""Rule code_funnel: per-shard cleaning stats -> results/code/stats.json and the funnel plot."""

from abacus_repro.code.funnel import run_code_funnel
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_funnel)  # noqa: F821  (injected by Snakemake's script directive)
