"""Rule rehearsal_checkpoint: a tiny checkpoint laid out exactly like the published MiniCPM-2B one."""

from abacus_repro.logging_setup import setup_logging
from abacus_repro.model.published_layout import write_published_layout

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

write_published_layout(
    smk.output.checkpoint,
    dict(smk.params.model),
    int(smk.params.vocab_size),
    int(smk.params.seed),
    sample_dir=smk.input.samples,
)
