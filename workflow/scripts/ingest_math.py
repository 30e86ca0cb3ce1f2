"""Rule ingest_math: math documents, generated (GSM8K-style, verified), GSM8K JSON lines, or document corpora."""

from abacus_repro.ingest.math import write_math
from abacus_repro.io import write_json
from abacus_repro.logging_setup import setup_logging

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    math = dict(smk.params.math)
    # Each corpus's files as the rule's inputs list them (get_math_corpus_files: corpus_0, corpus_1, ...), so the
    # job reads exactly the files Snakemake tracked.
    corpus_files = None
    if math["source"] == "corpus":
        corpus_files = [list(getattr(smk.input, f"corpus_{i}")) for i in range(len(math["corpus"]))]
    stats = write_math(math, int(smk.params.seed), smk.output.docs, corpus_files)
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("ingest_math failed")
    raise
log.info("%d math documents (%s)", stats["kept"], math["source"])
