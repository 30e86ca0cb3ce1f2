"""Rule sft_dataset: verified code pairs mixed 1:code_nl_ratio with StackExchange NL pairs, exact dedup."""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import build_dataset

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
dataset, stats = build_dataset(
    read_docs(smk.input.code),
    read_docs(smk.input.nl),
    code_nl_ratio=float(smk.params.sft["code_nl_ratio"]),
    seed=int(smk.params.seed),
    nl_shortfall=smk.params.sft["nl_shortfall"],
)
log.info("sft dataset: %d code + %d nl pairs (%d repeated)", stats["code"], stats["nl"], stats["nl_repeated"])
write_docs(smk.output.dataset, dataset)
write_json(smk.output.stats, stats)
