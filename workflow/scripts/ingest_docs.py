"""Rule ingest_docs: docs pages from code repositories plus the shipped sample pages -> one shard."""

from abacus_repro.ingest.docs import ingest_docs_rule
from abacus_repro.rules import run_rule

run_rule(snakemake, ingest_docs_rule)  # noqa: F821  (injected by Snakemake's script directive)
