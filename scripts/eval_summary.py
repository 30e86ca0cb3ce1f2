"""Rule eval_summary: summary.json, the seed's tables with every evaluated model's row (summary.md), the plot."""

from pathlib import Path

from abacus_repro.evaluate.summary import collect_results, format_scores, write_summary
from abacus_repro.logging_setup import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - Snakemake injects `snakemake`
root = Path(snakemake.output.summary).parent  # noqa: F821
summaries = write_summary(
    collect_results(root, snakemake.params.models),  # noqa: F821
    snakemake.output.summary,  # noqa: F821
    snakemake.output.table,  # noqa: F821
    snakemake.output.plot,  # noqa: F821
)
log.info("scores:\n%s", format_scores(summaries))
