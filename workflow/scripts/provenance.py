"""Rule provenance: the manifest and report for every result of the run."""

from abacus_repro.provenance import provenance_rule
from abacus_repro.rules import run_rule

run_rule(snakemake, provenance_rule)  # noqa: F821  (injected by Snakemake's script directive)
