"""Rule mixture: one phase's documents by token shares (results/mixture/{phase}.parquet + stats)."""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.mixture import build_mixture, mixture_paths
from abacus_repro.tokenization import load_tokenizer

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

phase = smk.wildcards.phase
names = ["code", "math", "text"] + (["sft"] if phase == "anneal" else [])
sources = {name: mixture_paths(getattr(smk.input, name)) for name in names}
tokenizer = load_tokenizer(smk.input.tokenizer)
# Documents the decontamination step listed never enter a mixture.
contaminated = frozenset(
    doc["id"] for path in mixture_paths(smk.input.contaminated) for doc in read_docs(path, columns=["id"])
)
docs, stats = build_mixture(sources, phase, smk.params.mixture, tokenizer, int(smk.params.seed), contaminated)
write_docs(smk.output.docs, docs)
write_json(smk.output.stats, stats)
log.info("mixture %s: %d docs, %d tokens (budget %d)", phase, stats["docs"], stats["tokens"], stats["budget_tokens"])
