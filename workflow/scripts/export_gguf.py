"""Rule export_gguf: one GGUF per configured type, verified against the model with llama.cpp."""

from abacus_repro.export.stage import export_gguf_files
from abacus_repro.rules import run_rule

run_rule(snakemake, export_gguf_files)  # noqa: F821  (injected by Snakemake's script directive)
