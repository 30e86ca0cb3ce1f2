"""Rule mixture: one phase's documents by token shares (results/mixture/{phase}.parquet + stats)."""

from abacus_repro.mixture.build import run_mixture
from abacus_repro.rules import run_rule

run_rule(snakemake, run_mixture)  # noqa: F821  (injected by Snakemake's script directive)
