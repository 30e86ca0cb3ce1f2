"""Rule code_funnel: per-shard cleaning stats -> results/code/stats.json and the funnel plot."""

from abacus_repro.code.funnel import plot_funnel, summarize_funnel
from abacus_repro.io import read_json, write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
stats = summarize_funnel([read_json(path) for path in smk.input.stats])
write_json(smk.output.stats, stats)
plot_funnel(stats, smk.output.plot)
log.info("code funnel: read %d, kept %d (%.1f%%)", stats["read"], stats["kept"], 100 * stats["kept_fraction"])
