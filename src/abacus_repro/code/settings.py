"""What the cleaning steps read besides the ``code:`` config section (abacus_repro.settings.CodeSettings, where
every configurable threshold and its default lives): values the recipe fixes, and the parser's grammar version."""

from __future__ import annotations

import sys

from ..settings import CodeSettings

# repetitive: lines shorter than this ("else:", "return None") are not counted by the repetitiveness test, and
# files with fewer counted lines are not judged.
REPETITIVE_MIN_LINE_CHARS = 10
REPETITIVE_MIN_LINES = 10
# Layout/whitespace fixes only, so a fix never changes what the code does. W391 and E303 are preview rules in
# ruff 0.17, so the fix run enables preview (for these selected rules only).
FIX_SELECT = ("W291", "W292", "W293", "W391", "E303")
FIX_PREVIEW = True


def feature_version(settings: CodeSettings) -> tuple[int, int]:
    """ast.parse's feature_version: ``code.target_version`` (the newest grammar a file may use, also ruff's
    --target-version), or the running interpreter's version when that is older."""
    return min((3, int(settings.target_version[3:])), tuple(sys.version_info[:2]))
