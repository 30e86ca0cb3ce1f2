"""Rule llm_server_gguf: the model directory llama_cpp is to serve (llm_server.model), exported to GGUF F16."""

from abacus_repro.export import write_gguf
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    write_gguf(smk.input.model, smk.output.gguf, "F16")
except Exception:
    log.exception("llm_server_gguf failed")
    raise
log.info("exported %s to %s for the LLM server", smk.input.model, smk.output.gguf)
