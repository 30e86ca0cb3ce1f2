"""Rule train_tokenizer: byte-level BPE on a seeded sample of the run's documents, or the checkpoint's own."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.model.tokenizer import tokenizer_from_shards

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

inputs = smk.input
pretrained = smk.params.pretrained
# With a checkpoint the job's only inputs are its tokenizer files: nothing is sampled.
paths = [] if pretrained else [*inputs.code, *inputs.text, inputs.math, inputs.sft]
tokenizer_from_shards(
    paths,
    dict(smk.params.tokenizer),
    Path(smk.output.tokenizer).parent,
    int(smk.params.seed),
    pretrained=pretrained,
)
