"""Rule sft_semi_instruct: rewrite, generate tests, keep pairs whose rewritten code matches the original.

With ``sft.rewriter.backend: openai`` and no ``base_url``, the job serves the rewriter's model itself for its
own lifetime (``llm_server``; abacus_repro.llm.server), its output in the rule's second log.
"""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.llm import consumer_endpoint
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import make_rewriter, semi_instruct

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    sft = dict(smk.params.sft)
    served_model = smk.input.get("llm_model")  # the served model file, when the job serves one
    with consumer_endpoint(
        sft["rewriter"], smk.params.llm_server, "sft.rewriter", smk.log.server, served_model, smk.threads
    ) as rewriter_settings:
        kept, dropped, stats = semi_instruct(
            read_docs(smk.input.natural),
            sft,
            seed=int(smk.params.seed),
            rewriter=make_rewriter(rewriter_settings),
            workers=int(smk.threads),
        )
    write_docs(smk.output.kept, kept)
    write_docs(smk.output.dropped, dropped, dropped=True)
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("sft_semi_instruct failed")
    raise
log.info("semi-instruct: kept %d of %d (%s)", stats["kept"], stats["read"], stats["dropped"])
