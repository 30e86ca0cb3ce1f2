"""Rule train_tokenizer: byte-level BPE on a seeded sample of the run's documents, or the checkpoint's own."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.model.tokenizer import tokenizer_from_shards

log = setup_logging(snakemake.log[0])  # noqa: F821

inputs = snakemake.input  # noqa: F821
pretrained = snakemake.params.pretrained  # noqa: F821
# With a checkpoint the job's only inputs are its tokenizer files: nothing is sampled.
paths = [] if pretrained else [*inputs.code, *inputs.text, inputs.math, inputs.sft]
tokenizer_from_shards(
    paths,
    dict(snakemake.params.tokenizer),  # noqa: F821
    Path(snakemake.output.tokenizer).parent,  # noqa: F821
    int(snakemake.params.seed),  # noqa: F821
    pretrained=pretrained,
)
