"""Rule mixture_stats: every phase's configured vs achieved shares in results/mixture/stats.json."""

from abacus_repro.mixture.build import run_mixture_stats
from abacus_repro.rules import run_rule

run_rule(snakemake, run_mixture_stats)  # noqa: F821  (injected by Snakemake's script directive)
