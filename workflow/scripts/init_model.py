"""Rule init_model: the tiny MiniCPM from config (or the published checkpoint), with the run's tokenizer."""

from abacus_repro.model.init import init_run_model
from abacus_repro.rules import run_rule

run_rule(snakemake, init_run_model)  # noqa: F821  (injected by Snakemake's script directive)
