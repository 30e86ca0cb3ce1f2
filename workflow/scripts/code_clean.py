"""Rule code_clean: one repository shard through the cleaning funnel (recipe steps 1-4)."""

from abacus_repro.code import CleanSettings, clean_shard
from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
kept, dropped, funnel = clean_shard(
    read_docs(smk.input.shard),
    CleanSettings.from_config(smk.params.code),
)
funnel.extra["shard"] = int(smk.wildcards.shard)
write_docs(smk.output.kept, kept)
write_docs(smk.output.dropped, dropped, dropped=True)
write_json(smk.output.stats, funnel.to_dict())
