"""Rule sft_semdedup: SemDeDup over the whole SFT pool (verified code pairs and NL pairs together)."""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import (
    SemDeDupSettings,
    plot_removed_fractions,
    read_nl_source,
    sentence_embedder,
    split_semdedup,
)

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
settings = SemDeDupSettings.from_config(smk.params.semdedup)
embed_texts = sentence_embedder(
    settings.embedding_model,
    settings.batch_size,
    threads=smk.threads,
    max_tokens=settings.max_tokens,
    device=settings.device,
)
code, nl, dropped, stats = split_semdedup(
    read_docs(smk.input.code),
    read_nl_source(smk.input.nl),
    embed_texts,
    settings,
    seed=int(smk.params.seed),
)
log.info("semdedup (eps %s, %s rule): kept %d of %d (%s)", settings.eps, settings.rule, stats["kept"],
         stats["read"], stats["dropped"])  # fmt: skip
write_docs(smk.output.code, code)
write_docs(smk.output.nl, nl)
write_docs(smk.output.dropped, dropped, dropped=True)
write_json(smk.output.stats, stats)
plot_removed_fractions(stats, smk.output.plot)
