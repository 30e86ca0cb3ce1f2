"""Rule rehearsal_math_corpus: seeded word problems in OpenWebMath's or algebraic-stack's published layout."""

from abacus_repro.rehearsal import run_rehearsal_math_corpus
from abacus_repro.rules import run_rule

run_rule(snakemake, run_rehearsal_math_corpus)  # noqa: F821  (injected by Snakemake's script directive)
