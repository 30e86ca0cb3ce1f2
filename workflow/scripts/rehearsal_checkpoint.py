"""Rule rehearsal_checkpoint: a tiny checkpoint laid out exactly like the published MiniCPM-2B one."""

from abacus_repro.model.published_layout import run_rehearsal_checkpoint
from abacus_repro.rules import run_rule

run_rule(snakemake, run_rehearsal_checkpoint)  # noqa: F821  (injected by Snakemake's script directive)
