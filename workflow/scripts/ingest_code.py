"""Rule ingest_code: sampled code files -> repository-sharded document shards, plus the docs found alongside."""

from abacus_repro.ingest.code import run_ingest_code
from abacus_repro.rules import run_rule

run_rule(snakemake, run_ingest_code)  # noqa: F821  (injected by Snakemake's script directive)
