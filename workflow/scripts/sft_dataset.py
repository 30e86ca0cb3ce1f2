"""Rule sft_dataset: verified code pairs mixed 1:code_nl_ratio with the NL pairs, exact dedup."""

from abacus_repro.rules import run_rule
from abacus_repro.sft.dataset import run_sft_dataset

run_rule(snakemake, run_sft_dataset)  # noqa: F821  (injected by Snakemake's script directive)
