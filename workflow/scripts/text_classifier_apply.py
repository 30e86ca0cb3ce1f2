"""Rule text_classifier_apply: every StackExchange thread kept or dropped (low_quality) by the classifier."""

from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.classifier import apply_classifier_to_files, load_classifier

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    settings = dict(smk.params.classifier)
    classifier = load_classifier(smk.input.classifier)
    # Streamed chunk by chunk from qa.parquet to kept/dropped: memory does not grow with the dump.
    stats = apply_classifier_to_files(
        smk.input.qa,
        classifier,
        smk.output.kept,
        smk.output.dropped,
        threshold=float(settings["threshold"]),
        batch_size=int(settings["batch_size"]),
        threads=smk.threads,
        device=settings["device"],
    )
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("text_classifier_apply failed")
    raise
log.info("kept %d of %d threads", stats["kept"], stats["read"])
