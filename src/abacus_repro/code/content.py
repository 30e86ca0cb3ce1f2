"""Recipe step 2: regular-expression features of data-dense code (base64/hex blobs, long strings, long lines,
symbol soup) and of simple repetitive code (the same line over and over). Thresholds come from the ``code:`` settings
(CodeSettings)."""

from __future__ import annotations

import re

from ..settings import CodeSettings
from .settings import REPETITIVE_MIN_LINE_CHARS, REPETITIVE_MIN_LINES
from .syntax import ParsedFile

# A run of base64 or hex characters; it only counts as a blob when it mixes letters and digits, so a long
# identifier or a line of "=====" is not data.
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")
# Hex escapes ("\x89\x50...") and 0x.. byte lists ("0x89, 0x50, ...") are blobs too, whitespace or not.
HEX_ESCAPE_RUN = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){8,}")
HEX_LIST_RUN = re.compile(r"(?:0[xX][0-9A-Fa-f]{1,8},\s*){8,}")
# Inside a string literal, a blob may be wrapped ("...76 chars\n...76 chars"): whitespace-separated chunks of
# base64 that are each too long to be words.
WRAPPED_BASE64_RUN = re.compile(r"(?:[A-Za-z0-9+/]{32,}={0,2}\s+)*[A-Za-z0-9+/]{32,}={0,2}")
WHITESPACE = re.compile(r"\s+")
HAS_LETTER = re.compile(r"[A-Za-z]")
HAS_DIGIT = re.compile(r"[0-9]")
ALNUM_RUN = re.compile(r"[^\W_]+")
# For ASCII text (almost all code) the same counts come from bytes.translate, many times faster than a regex.
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
ASCII_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _is_base64_like(run: str) -> bool:
    return bool(HAS_LETTER.search(run) and HAS_DIGIT.search(run))


def longest_blob(text: str, strings: list[tuple[str, int]] = ()) -> tuple[int, int]:
    """(length, line) of the longest base64/hex blob in the source text or, wrapped, inside one of the string
    literal values ``strings`` ((value, line) pairs); (0, 0) when there is none."""
    best = (0, 0)
    # Each regex costs a pass over the text; a hex one is skipped when the text holds fewer than the 8 escapes or
    # 0x literals its shortest match needs (counting a substring is many times faster than the regex).
    patterns = [(BASE64_RUN, True)]
    if text.count("\\x") >= 8:
        patterns.append((HEX_ESCAPE_RUN, False))
    if text.count("0x") + text.count("0X") >= 8:
        patterns.append((HEX_LIST_RUN, False))
    for pattern, needs_mix in patterns:
        for match in pattern.finditer(text):
            run = match.group()
            if len(run) > best[0] and (not needs_mix or _is_base64_like(run)):
                best = (len(run), text.count("\n", 0, match.start()) + 1)
    for value, line in strings:
        for match in WRAPPED_BASE64_RUN.finditer(value):
            run = WHITESPACE.sub("", match.group())
            if len(run) > best[0] and _is_base64_like(run):
                best = (len(run), line + value.count("\n", 0, match.start()))
    return best


def judge_data_dense(text: str, parsed: ParsedFile, settings: CodeSettings) -> str | None:
    """The detail of why a file is data rather than code, or None."""
    lengths = list(map(len, text.splitlines())) or [0]
    longest = max(lengths)
    if longest > settings.max_line_length:
        return f"line {lengths.index(longest) + 1} has {longest} chars > max_line_length {settings.max_line_length}"
    mean = sum(lengths) / len(lengths)
    if mean > settings.max_mean_line_length:
        return f"mean line length {mean:.1f} > max_mean_line_length {settings.max_mean_line_length}"
    blob, blob_line = longest_blob(text, parsed.long_strings)
    if blob > settings.max_blob_chars:
        return f"base64/hex blob of {blob} chars at line {blob_line} > max_blob_chars {settings.max_blob_chars}"
    length, line = parsed.longest_string
    if length > settings.max_string_literal_chars:
        return (
            f"string literal of {length} chars at line {line} > max_string_literal_chars "
            f"{settings.max_string_literal_chars}"
        )
    non_space, alnum = character_counts(text)
    if non_space and alnum / non_space < settings.min_alnum_fraction:
        return f"alphanumeric fraction {alnum / non_space:.2f} < min_alnum_fraction {settings.min_alnum_fraction}"
    return None


def character_counts(text: str) -> tuple[int, int]:
    """(non-whitespace characters, letters and digits) of the text."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, ASCII_WHITESPACE)), len(data) - len(data.translate(None, ASCII_ALNUM))
    return sum(len(word) for word in text.split()), len(text) - len(ALNUM_RUN.sub("", text))


def judge_repetitive(text: str, settings: CodeSettings) -> str | None:
    """The detail of why a file is mostly the same lines repeated, or None."""
    counted = [s for s in (line.strip() for line in text.splitlines()) if len(s) >= REPETITIVE_MIN_LINE_CHARS]
    if len(counted) < REPETITIVE_MIN_LINES:
        return None
    repeats = len(counted) - len(set(counted))
    fraction = repeats / len(counted)
    if fraction > settings.max_duplicate_line_fraction:
        return (
            f"{repeats} of {len(counted)} lines repeat an earlier line ({fraction:.2f} > "
            f"max_duplicate_line_fraction {settings.max_duplicate_line_fraction})"
        )
    return None
