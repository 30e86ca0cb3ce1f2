"""Code cleaning (recipe steps 1-4): syntax and Python 2, data-dense and repetitive files, ruff, dependency order.

Per repository shard the workflow runs ``run_code_clean`` (rule code_clean), then near-duplicate removal over the
whole corpus (code/near_dedup.py) and ``run_code_finish`` (rule code_finish: the drop and dependency order);
``clean_shard`` does a shard's cleaning and ordering in one call, without near duplicates; ``check_paths`` gives the
same per-file decision for files on disk (``abacus-repro code check``).
"""

from .pipeline import REASONS, check_paths, clean_shard, run_code_clean, run_code_finish

__all__ = ["REASONS", "check_paths", "clean_shard", "run_code_clean", "run_code_finish"]
