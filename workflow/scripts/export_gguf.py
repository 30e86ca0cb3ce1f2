"""Rule export_gguf: one GGUF per configured type, verified against the model with llama.cpp."""

from abacus_repro.export import export_all
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

settings = dict(smk.params.export)
# llama.cpp and torch use the rule's threads during verification.
settings["verify"] = {**settings["verify"], "threads": smk.threads}
export_all(
    smk.input.model,
    list(smk.output.gguf),
    list(settings["types"]),
    smk.output.verify,
    settings,
)
