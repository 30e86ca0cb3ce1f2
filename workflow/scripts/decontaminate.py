"""Rule decontaminate: list every training document of a source group sharing long n-grams with an eval set."""

from abacus_repro.io import write_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.mixture import decontaminate_sources, mixture_paths

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

names = ["code", "math", "text"] if smk.wildcards.group == "pretrain" else ["sft"]
sources = {name: mixture_paths(getattr(smk.input, name)) for name in names}
# The evaluation roots that exist are inputs; missing ones are passed on so the stats name them.
eval_roots = [*smk.input.eval_data, *smk.params.absent_eval_data]
dropped, stats = decontaminate_sources(sources, eval_roots, smk.params.decontamination)
write_docs(smk.output.dropped, dropped, dropped=True)
write_json(smk.output.stats, stats)
log.info("decontamination: %d of %d documents dropped %s", len(dropped), stats["read"], stats["by_benchmark"])
