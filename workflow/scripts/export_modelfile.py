"""Rule export_modelfile: an Ollama Modelfile for the chosen GGUF."""

from abacus_repro.export.stage import export_modelfile
from abacus_repro.rules import run_rule

run_rule(snakemake, export_modelfile)  # noqa: F821  (injected by Snakemake's script directive)
