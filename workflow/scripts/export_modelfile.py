"""Rule export_modelfile: an Ollama Modelfile for the chosen GGUF."""

from abacus_repro.export import write_modelfile
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

write_modelfile(
    smk.input.gguf,
    smk.output.modelfile,
    dict(smk.params.export),
)
