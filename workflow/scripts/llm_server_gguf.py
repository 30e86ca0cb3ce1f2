"""Rule llm_server_gguf: the model directory llama_cpp is to serve (llm_server.model), exported to GGUF F16."""

from abacus_repro.export.stage import export_server_gguf
from abacus_repro.rules import run_rule

run_rule(snakemake, export_server_gguf)  # noqa: F821  (injected by Snakemake's script directive)
