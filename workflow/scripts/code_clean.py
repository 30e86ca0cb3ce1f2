"""Rule code_clean: one repository shard through the cleaning funnel (recipe steps 1-4)."""

from abacus_repro.code.pipeline import run_code_clean
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_clean)  # noqa: F821  (injected by Snakemake's script directive)
