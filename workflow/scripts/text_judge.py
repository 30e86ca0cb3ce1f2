"""Rule text_judge: a seeded sample of StackExchange threads scored 1-5 by the configured judge.

With ``text.judge.backend: openai`` and no ``base_url``, the job serves the judge model itself for its own
lifetime (``llm_server``; abacus_repro.llm.server), its output in the rule's second log.
"""

from abacus_repro.io import write_docs, write_json
from abacus_repro.llm import consumer_endpoint
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.judge import client_from_settings, judge_sample, read_judge_sample, reply_format_for

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    sample_size = int(smk.params.judge["sample_size"])
    # Only the ids of qa.parquet are read in full; then the sampled threads.
    sample, available = read_judge_sample(smk.input.qa, sample_size, int(smk.params.seed))
    served_model = smk.input.get("llm_model")  # the served model file, when the job serves one
    with consumer_endpoint(
        smk.params.judge, smk.params.llm_server, "text.judge", smk.log.server, served_model, smk.threads
    ) as settings:
        labels, stats = judge_sample(
            sample,
            client_from_settings(settings),
            available=available,
            sample_size=sample_size,
            good_score=int(settings["good_score"]),
            max_chars=int(settings["max_chars"]),
            batch_size=int(settings["batch_size"]),
            reply_format=reply_format_for(settings),
        )
    write_docs(smk.output.labels, labels)
    write_json(smk.output.stats, stats)
except Exception:
    log.exception("text_judge failed")
    raise
log.info("judge %s labelled %d threads (%d rejected)", stats["judge"], stats["labelled"], stats["rejected"])
