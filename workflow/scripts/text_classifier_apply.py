"""Rule text_classifier_apply: every StackExchange thread kept or dropped (low_quality) by the classifier."""

from abacus_repro.rules import run_rule
from abacus_repro.text.classifier import classifier_apply_rule

run_rule(snakemake, classifier_apply_rule)  # noqa: F821  (injected by Snakemake's script directive)
