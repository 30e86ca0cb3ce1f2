"""Rule text_stats: results/text/stats.json from the text stage's funnels and the classifier's metrics."""

from abacus_repro.io import read_json, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.stats import combine_text_stats

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    inputs = smk.input
    stats = combine_text_stats(
        read_json(inputs.ingest),
        read_json(inputs.judge),
        read_json(inputs.classifier),
        read_json(inputs.stackexchange),
        read_json(inputs.docs),
    )
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("text_stats failed")
    raise
log.info("stackexchange funnel: %s", stats["stackexchange"]["funnel"])
