"""Rule sft_semi_instruct: rewrite, generate tests, keep pairs whose rewritten code matches the original.

With ``sft.rewriter.backend: openai`` and no ``base_url``, the job serves the rewriter's model itself for its
own lifetime (``llm_server``; abacus_repro.llm.server), its output in the rule's second log.
"""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.llm import consumer_endpoint
from abacus_repro.logging_setup import setup_logging
from abacus_repro.sft import make_rewriter, semi_instruct

sm = snakemake  # noqa: F821 - Snakemake injects `snakemake`
log = setup_logging(sm.log[0])
try:
    sft = dict(sm.params.sft)
    served_model = sm.input.get("llm_model")  # the served model file, when the job serves one
    with consumer_endpoint(
        sft["rewriter"], sm.params.llm_server, "sft.rewriter", sm.log.server, served_model, sm.threads
    ) as rewriter_settings:
        kept, dropped, stats = semi_instruct(
            read_docs(sm.input.natural),
            sft,
            seed=int(sm.params.seed),
            rewriter=make_rewriter(rewriter_settings),
            workers=int(sm.threads),
        )
    write_docs(sm.output.kept, kept)
    write_docs(sm.output.dropped, dropped, dropped=True)
    write_json(sm.output.stats, stats)
except Exception:
    log.exception("sft_semi_instruct failed")
    raise
log.info("semi-instruct: kept %d of %d (%s)", stats["kept"], stats["read"], stats["dropped"])
