"""Rule code_clean: one repository shard through cleaning steps 1-6 (recipe steps 1-3), kept files one per document."""

from abacus_repro.code.pipeline import run_code_clean
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_clean)  # noqa: F821  (injected by Snakemake's script directive)
