"""Rule tokenize_validation: one source's validation documents -> packed rows (tokens, segments, loss_mask)."""

from abacus_repro.rules import run_rule
from abacus_repro.tokenization import tokenize_validation

run_rule(snakemake, tokenize_validation)  # noqa: F821  (injected by Snakemake's script directive)
