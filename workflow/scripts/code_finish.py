"""Rule code_finish: one shard's near duplicates dropped, the kept files in dependency order (recipe step 4)."""

from abacus_repro.code.pipeline import run_code_finish
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_finish)  # noqa: F821  (injected by Snakemake's script directive)
