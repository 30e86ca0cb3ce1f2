"""Rule train_tokenizer: byte-level BPE on a seeded sample of the run's documents, or the checkpoint's own."""

from abacus_repro.model.tokenizer import train_run_tokenizer
from abacus_repro.rules import run_rule

run_rule(snakemake, train_run_tokenizer)  # noqa: F821  (injected by Snakemake's script directive)
