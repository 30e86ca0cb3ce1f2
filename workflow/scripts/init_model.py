"""Rule init_model: the tiny MiniCPM from config (or the published checkpoint), with the run's tokenizer."""

from abacus_repro.logging_setup import setup_logging
from abacus_repro.model.init import init_model

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

init_model(
    dict(smk.params.model),
    smk.input.tokenizer,
    smk.output.model,
    int(smk.params.seed),
)
