"""Rule ingest_math: math documents, generated (GSM8K-style, verified), GSM8K JSON lines, or document corpora."""

from abacus_repro.ingest.math import run_ingest_math
from abacus_repro.rules import run_rule

run_rule(snakemake, run_ingest_math)  # noqa: F821  (injected by Snakemake's script directive)
