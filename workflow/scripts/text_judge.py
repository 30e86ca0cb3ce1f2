"""Rule text_judge: a seeded sample of StackExchange threads scored 1-5 by the configured judge.

With ``text.judge.backend: openai`` and no ``base_url``, the job serves the judge model itself for its own
lifetime (``llm_server``; abacus_repro.llm.server), its output in the rule's second log.
"""

from abacus_repro.rules import run_rule
from abacus_repro.text.judge import judge_rule

run_rule(snakemake, judge_rule)  # noqa: F821  (injected by Snakemake's script directive)
