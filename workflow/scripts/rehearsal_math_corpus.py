"""Rule rehearsal_math_corpus: seeded word problems in OpenWebMath's or algebraic-stack's published layout."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.rehearsal import write_algebraic_stack_layout, write_openwebmath_layout

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
WRITERS = {
    "openwebmath": (write_openwebmath_layout, "train-00000-of-00001.parquet"),
    "algebraic_stack": (write_algebraic_stack_layout, "python0000.jsonl.zst"),
}
try:
    writer, name = WRITERS[smk.params.layout]
    written = writer(Path(smk.output.corpus) / name, smk.params.documents, smk.params.seed)
except Exception:
    log.exception("rehearsal_math_corpus failed")
    raise
log.info("stand-in %s corpus: %d documents", smk.params.layout, written)
