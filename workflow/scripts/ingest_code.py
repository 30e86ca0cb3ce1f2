"""Rule ingest_code: sampled code files -> repository-sharded document shards, plus the docs found alongside."""

from abacus_repro.ingest.code import ingest_code
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
ingest_code(
    smk.params.code,
    shards=int(smk.params.shards),
    seed=int(smk.params.seed),
    shard_paths=list(smk.output.shards),
    docs_path=smk.output.docs,
    stats_path=smk.output.stats,
)
