"""Rule sft_dataset: verified code pairs mixed 1:code_nl_ratio with StackExchange NL pairs, exact dedup."""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import build_dataset

log = setup_logging(snakemake.log[0])  # noqa: F821 - Snakemake injects `snakemake`
dataset, stats = build_dataset(
    read_docs(snakemake.input.code),  # noqa: F821
    read_docs(snakemake.input.nl),  # noqa: F821
    code_nl_ratio=float(snakemake.params.sft["code_nl_ratio"]),  # noqa: F821
    seed=int(snakemake.params.seed),  # noqa: F821
    nl_shortfall=snakemake.params.sft["nl_shortfall"],  # noqa: F821
)
log.info("sft dataset: %d code + %d nl pairs (%d repeated)", stats["code"], stats["nl"], stats["nl_repeated"])
write_docs(snakemake.output.dataset, dataset)  # noqa: F821
write_json(snakemake.output.stats, stats)  # noqa: F821
