"""Code cleaning (recipe steps 1-4): syntax and Python 2, data-dense and repetitive files, ruff, dependency order.

``clean_shard`` is what the workflow runs per repository shard (rule code_clean: ``run_code_clean``); ``check_paths`` gives the same per-file decision
for files on disk (``abacus-repro code check``).
"""

from .pipeline import REASONS, check_paths, clean_shard, run_code_clean

__all__ = ["REASONS", "check_paths", "clean_shard", "run_code_clean"]
