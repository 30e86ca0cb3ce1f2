"""Rule rehearsal_code_dump: this machine's Python installation as a code dump in The Stack v2's layout."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.rehearsal import write_stack_layout_dump

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    counts = write_stack_layout_dump(Path(smk.output.dump) / "train-00000.parquet", smk.params.code, smk.params.seed)
except Exception:
    log.exception("rehearsal_code_dump failed")
    raise
log.info("stand-in Stack v2 dump: %s", counts)
