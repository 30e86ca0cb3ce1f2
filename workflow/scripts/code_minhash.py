"""Rule code_minhash: MinHash signatures (datasketch) of one shard's cleaned files, for near-duplicate removal."""

from abacus_repro.code.near_dedup import run_code_minhash
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_minhash)  # noqa: F821  (injected by Snakemake's script directive)
