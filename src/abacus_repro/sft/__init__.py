"""SFT data: Natural-Instruct collection, Semi-Instruct rewriting verified in the sandbox, SemDeDup over the whole
pool, the code/NL mix."""

from .collect import collect_natural, run_sft_collect
from .dataset import build_dataset, nl_pair, run_sft_dataset
from .nl_data import read_nl_source
from .semdedup import plot_removed_fractions, run_sft_semdedup, sentence_embedder, split_semdedup
from .semi_instruct import (
    LLMRewriter,
    RewriteError,
    Rewriter,
    SemiInstructJob,
    TemplateRewriter,
    make_rewriter,
    run_sft_semi_instruct,
    semi_instruct,
)

__all__ = [
    "LLMRewriter",
    "RewriteError",
    "Rewriter",
    "SemiInstructJob",
    "TemplateRewriter",
    "build_dataset",
    "collect_natural",
    "make_rewriter",
    "nl_pair",
    "plot_removed_fractions",
    "read_nl_source",
    "run_sft_collect",
    "run_sft_dataset",
    "run_sft_semdedup",
    "run_sft_semi_instruct",
    "semi_instruct",
    "sentence_embedder",
    "split_semdedup",
]
