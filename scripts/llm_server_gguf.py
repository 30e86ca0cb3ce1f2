"""Rule llm_server_gguf: the model directory llama_cpp is to serve (llm_server.model), exported to GGUF F16."""

from abacus_repro.export import write_gguf
from abacus_repro.logging_setup import setup_logging

sm = snakemake  # noqa: F821 - Snakemake injects `snakemake`
log = setup_logging(sm.log[0])
try:
    write_gguf(sm.input.model, sm.output.gguf, "F16")
except Exception:
    log.exception("llm_server_gguf failed")
    raise
log.info("exported %s to %s for the LLM server", sm.input.model, sm.output.gguf)
