"""Rule tokenize: a phase's documents -> packed rows (tokens, segments, loss_mask .npy + meta.json)."""

from abacus_repro.io import read_docs
from abacus_repro.logging_setup import setup_logging
from abacus_repro.mixture import mixture_paths
from abacus_repro.tokenization import load_tokenizer, tokenize_and_pack, write_packed

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

phase = smk.wildcards.phase
docs_path = str(smk.input.docs)
docs = read_docs(docs_path)
# The SFT phase reads the SFT data set directly: documents the decontamination step listed are left out here
# (the pretraining mixtures left them out already).
contaminated = frozenset(
    doc["id"] for path in mixture_paths(smk.input.contaminated) for doc in read_docs(path, columns=["id"])
)
kept = [doc for doc in docs if doc["id"] not in contaminated]
packed = tokenize_and_pack(
    kept,
    load_tokenizer(smk.input.tokenizer),
    int(smk.params.seq_len),
    sft=phase == "sft",
    source_path=docs_path,
    workers=int(smk.threads),
)
packed.meta["decontaminated_docs"] = len(docs) - len(kept)
write_packed(packed, smk.output.tokens, smk.output.segments, smk.output.loss_mask, smk.output.meta)
log.info("tokenized %s: %s", phase, packed.meta)
