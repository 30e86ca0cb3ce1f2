"""Rule decontaminate: list every training document of a source group sharing long n-grams with an eval set."""

from abacus_repro.mixture.decontaminate import run_decontaminate
from abacus_repro.rules import run_rule

run_rule(snakemake, run_decontaminate)  # noqa: F821  (injected by Snakemake's script directive)
