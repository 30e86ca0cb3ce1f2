"""Rule docs_filter: keep Chinese/English/bilingual docs pages that contain Python code."""

from abacus_repro.rules import run_rule
from abacus_repro.text.docs_filter import docs_filter_rule

run_rule(snakemake, docs_filter_rule)  # noqa: F821  (injected by Snakemake's script directive)
