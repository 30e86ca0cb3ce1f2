"""Rule code_near_clusters: verified near-duplicate clusters over the whole corpus and their stats."""

from abacus_repro.code.near_dedup import run_code_near_clusters
from abacus_repro.rules import run_rule

run_rule(snakemake, run_code_near_clusters)  # noqa: F821  (injected by Snakemake's script directive)
