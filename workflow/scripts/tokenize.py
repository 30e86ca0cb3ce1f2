"""Rule tokenize: a phase's documents -> packed rows (tokens, segments, loss_mask .npy + meta.json)."""

from abacus_repro.rules import run_rule
from abacus_repro.tokenization import tokenize_phase

run_rule(snakemake, tokenize_phase)  # noqa: F821  (injected by Snakemake's script directive)
