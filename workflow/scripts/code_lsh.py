"""Rule code_lsh: near-duplicate candidate pairs from one group of LSH bands over every shard's signatures."""

from abacus_repro.code.near_dedup import run_code_lsh
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_lsh)  # noqa: F821  (injected by Snakemake's script directive)
