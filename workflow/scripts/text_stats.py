"""Rule text_stats: results/text/stats.json from the text stage's funnels and the classifier's metrics."""

from abacus_repro.rules import run_rule
from abacus_repro.text.stats import text_stats_rule

run_rule(snakemake, text_stats_rule)  # noqa: F821  (injected by Snakemake's script directive)
