"""Rule sft_semi_instruct: rewrite, generate tests, keep pairs whose rewritten code matches the original.

With ``sft.rewriter.backend: openai`` and no ``base_url``, the job serves the rewriter's model itself.
"""

from abacus_repro.rules import run_rule
from abacus_repro.sft.semi_instruct import run_sft_semi_instruct

run_rule(snakemake, run_sft_semi_instruct)  # noqa: F821  (injected by Snakemake's script directive)
