"""Per-phase data mixtures by token shares (cosine/base: code/math/text; anneal: pretraining plus SFT), after
decontamination against the evaluation sets."""

from .build import (
    build_mixture,
    collect_phase_stats,
    mixture_paths,
    phase_targets,
    run_mixture,
    run_mixture_stats,
    sample_to_budget,
    sft_part_targets,
)
from .decontaminate import build_index, decontaminate_sources, run_decontaminate, scan_sources, words

__all__ = [
    "build_index",
    "build_mixture",
    "collect_phase_stats",
    "decontaminate_sources",
    "mixture_paths",
    "phase_targets",
    "run_decontaminate",
    "run_mixture",
    "run_mixture_stats",
    "sample_to_budget",
    "scan_sources",
    "sft_part_targets",
    "words",
]
