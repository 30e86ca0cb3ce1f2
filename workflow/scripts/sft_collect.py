"""Rule sft_collect: Natural-Instruct functions (self-contained, documented) from the cleaned code shards."""

from abacus_repro.rules import run_rule
from abacus_repro.sft.collect import run_sft_collect

run_rule(snakemake, run_sft_collect)  # noqa: F821  (injected by Snakemake's script directive)
