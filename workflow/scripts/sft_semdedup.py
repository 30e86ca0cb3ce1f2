"""Rule sft_semdedup: SemDeDup over the whole SFT pool (verified code pairs and NL pairs together)."""

from abacus_repro.rules import run_rule
from abacus_repro.sft.semdedup import run_sft_semdedup

run_rule(snakemake, run_sft_semdedup)  # noqa: F821  (injected by Snakemake's script directive)
