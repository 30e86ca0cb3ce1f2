"""Rule docs_filter: keep Chinese/English/bilingual docs pages that contain Python code."""

from abacus_repro.io import read_docs, write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.docs_filter import filter_docs

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    settings = dict(smk.params.docs)
    kept, dropped, stats = filter_docs(
        read_docs(smk.input.docs),
        languages=list(settings["languages"]),
        min_chars=int(settings["min_chars"]),
        min_cjk_chars=int(settings["min_cjk_chars"]),
        zh_share=float(settings["zh_share"]),
    )
    write_docs(smk.output.kept, kept)
    write_docs(smk.output.dropped, dropped, dropped=True)
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("docs_filter failed")
    raise
log.info("docs: kept %d of %d, dropped %s", stats["kept"], stats["read"], stats["dropped"])
