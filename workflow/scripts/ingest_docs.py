"""Rule ingest_docs: docs pages from code repositories plus the shipped sample pages -> one shard."""

from abacus_repro.ingest.docs import ingest_docs
from abacus_repro.io import write_docs, write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    settings = smk.params.docs
    docs, stats = ingest_docs(
        smk.input.from_code,
        list(smk.input.samples),
        settings["sample_dir"],
        use_code_repos=bool(settings["from_code_repos"]),
    )
    write_docs(smk.output.docs, docs)
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("ingest_docs failed")
    raise
log.info("%d docs pages: %s", stats["kept"], stats["by_origin_format"])
