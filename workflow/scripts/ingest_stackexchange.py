"""Rule ingest_stackexchange: Posts.xml dumps or site .7z archives -> question-and-answer documents (+ dropped, stats)."""

from abacus_repro.ingest.stackexchange import ingest_stackexchange_to_files
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    settings = smk.params.stackexchange
    # Streamed: documents go to Parquet as they are made; the thread store is a scratch SQLite file in
    # work_dir (null: $TMPDIR), about half the dump's size.
    stats = ingest_stackexchange_to_files(
        list(smk.input.dumps),
        smk.output.kept,
        smk.output.dropped,
        int(settings["answers_per_question"]),
        work_dir=settings["work_dir"],
    )
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("ingest_stackexchange failed")
    raise
log.info("kept %d threads, dropped %s", stats["kept"], stats["dropped"])
