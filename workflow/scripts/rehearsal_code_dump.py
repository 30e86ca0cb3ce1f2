"""Rule rehearsal_code_dump: this machine's Python installation as a code dump in The Stack v2's layout."""

from abacus_repro.rehearsal import run_rehearsal_code_dump
from abacus_repro.rules import run_rule

run_rule(snakemake, run_rehearsal_code_dump)  # noqa: F821  (injected by Snakemake's script directive)
