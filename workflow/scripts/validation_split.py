"""Rule validation_split: the held-out validation documents of every source (code, math, text, SFT)."""

from abacus_repro.mixture.validation import run_validation_split
from abacus_repro.rules import run_rule

run_rule(snakemake, run_validation_split)  # noqa: F821  (injected by Snakemake's script directive)
