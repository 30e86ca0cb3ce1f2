"""What the cleaning steps read besides the ``code:`` config section (abacus_repro.settings.CodeSettings, where
every configurable threshold and its default lives): values the recipe fixes, and the parser's grammar version."""

from __future__ import annotations

import sys

from ..settings import CodeSettings

# repetitive: lines shorter than this ("else:", "return None") are not counted by the repetitiveness test, and
# files with fewer counted lines are not judged.
REPETITIVE_MIN_LINE_CHARS = 10
REPETITIVE_MIN_LINES = 10
# max_mean_line_length judges only files of this many lines or more: a one-line __init__.py of 110 characters is
# not generated code.
MEAN_LINE_MIN_LINES = 10
# max_string_literal_chars applies to strings holding data, not to text (content.reads_as_text): text has at least
# this many whitespace-separated words per non-blank line, words of at most this many characters on average, and
# letters for at least this fraction of its non-space characters. Measured on the strings over 1000 characters in
# site-packages: prose and code templates have 2-15 words a line of 4-16 characters; word lists and tables 1-1.3
# words a line, regex alternations and base64 one word of thousands of characters, digit tables few letters.
MIN_TEXT_WORDS_PER_LINE = 1.5
MAX_TEXT_WORD_CHARS = 20
MIN_TEXT_LETTER_FRACTION = 0.25
# Layout/whitespace fixes only, so a fix never changes what the code does. W391 and E303 are preview rules in
# ruff 0.17, so the fix run enables preview (for these selected rules only).
FIX_SELECT = ("W291", "W292", "W293", "W391", "E303")
FIX_PREVIEW = True
# The meta key under which code_clean hands code_finish what it must not recompute: the file's size as read, its
# parsed import statements (dependency order) and whether ruff fixed it. code_finish removes it again.
CLEANED_META_KEY = "_clean"


def feature_version(settings: CodeSettings) -> tuple[int, int]:
    """ast.parse's feature_version: ``code.target_version`` (the newest grammar a file may use, also ruff's
    --target-version), or the running interpreter's version when that is older."""
    return min((3, int(settings.target_version[3:])), tuple(sys.version_info[:2]))
