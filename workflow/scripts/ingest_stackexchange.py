"""Rule ingest_stackexchange: Posts.xml dumps or site .7z archives -> question-and-answer documents (+ dropped, stats)."""

from abacus_repro.ingest.stackexchange import ingest_stackexchange_rule
from abacus_repro.rules import run_rule

run_rule(snakemake, ingest_stackexchange_rule)  # noqa: F821  (injected by Snakemake's script directive)
