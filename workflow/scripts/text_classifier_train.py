"""Rule text_classifier_train: embeddings + logistic regression on the judge's labels -> JSON classifier."""

from abacus_repro.rules import run_rule
from abacus_repro.text.classifier import classifier_train_rule

run_rule(snakemake, classifier_train_rule)  # noqa: F821  (injected by Snakemake's script directive)
