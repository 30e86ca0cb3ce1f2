"""Rule eval_summary: summary.json, the seed's tables with every evaluated model's row (summary.md), the plot."""

from pathlib import Path

from abacus_repro.evaluate.summary import collect_results, format_scores, write_summary
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
root = Path(smk.output.summary).parent
summaries = write_summary(
    collect_results(root, smk.params.models),
    smk.output.summary,
    smk.output.table,
    smk.output.plot,
)
log.info("scores:\n%s", format_scores(summaries))
