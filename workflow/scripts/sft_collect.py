"""Rule sft_collect: Natural-Instruct functions (self-contained, documented) from the cleaned code shards."""

from abacus_repro.io import write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import collect_natural

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
sft = smk.params.sft
natural, stats = collect_natural(
    smk.input.code,
    max_functions=sft["max_functions"],
    seed=int(smk.params.seed),
)
write_docs(smk.output.natural, natural)
write_json(smk.output.stats, stats)
