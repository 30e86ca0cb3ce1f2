"""Rule rehearsal_checkpoint: a tiny checkpoint laid out exactly like the published MiniCPM-2B one."""

from abacus_repro.logging_setup import setup_logging
from abacus_repro.model.published_layout import write_published_layout

log = setup_logging(snakemake.log[0])  # noqa: F821

write_published_layout(
    snakemake.output.checkpoint,  # noqa: F821
    dict(snakemake.params.model),  # noqa: F821
    int(snakemake.params.vocab_size),  # noqa: F821
    int(snakemake.params.seed),  # noqa: F821
    sample_dir=snakemake.input.samples,  # noqa: F821
)
