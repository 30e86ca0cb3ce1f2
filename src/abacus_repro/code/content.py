"""Recipe step 2: regular-expression features of data-dense code (base64/hex blobs, long data strings, long lines,
symbol soup) and of trivially repetitive code (the same line over and over, or the same block pasted again and
again). Thresholds come from the ``code:`` settings (CodeSettings).

Each test is a rule of its own (DATA_DENSE_RULES, REPETITIVE_RULES), so code.precision can measure what every rule
drops on its own; the judges apply them in order and stop at the first that fires."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..settings import CodeSettings
from .settings import (
    MAX_TEXT_WORD_CHARS,
    MEAN_LINE_MIN_LINES,
    MIN_TEXT_LETTER_FRACTION,
    MIN_TEXT_WORDS_PER_LINE,
    REPETITIVE_MIN_LINE_CHARS,
    REPETITIVE_MIN_LINES,
)
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
LETTER_RUN = re.compile(r"[^\W\d_]+")
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


# A data-dense rule: (text, its line lengths, the parse, settings) -> why the file is data, or None.
DataDenseRule = Callable[[str, list[int], ParsedFile, CodeSettings], str | None]


def judge_data_dense(text: str, parsed: ParsedFile, settings: CodeSettings) -> str | None:
    """The detail of why a file is data rather than code, or None."""
    lengths = list(map(len, text.splitlines())) or [0]
    for _, rule in DATA_DENSE_RULES:
        detail = rule(text, lengths, parsed, settings)
        if detail is not None:
            return detail
    return None


def long_line(text: str, lengths: list[int], parsed: ParsedFile, settings: CodeSettings) -> str | None:
    longest = max(lengths)
    if longest > settings.max_line_length:
        return f"line {lengths.index(longest) + 1} has {longest} chars > max_line_length {settings.max_line_length}"
    return None


def long_mean_line(text: str, lengths: list[int], parsed: ParsedFile, settings: CodeSettings) -> str | None:
    # A file of a few lines (an __init__.py that is one long import) says nothing about its mean.
    if len(lengths) < MEAN_LINE_MIN_LINES:
        return None
    mean = sum(lengths) / len(lengths)
    if mean > settings.max_mean_line_length:
        return f"mean line length {mean:.1f} > max_mean_line_length {settings.max_mean_line_length}"
    return None


def long_blob(text: str, lengths: list[int], parsed: ParsedFile, settings: CodeSettings) -> str | None:
    blob, blob_line = longest_blob(text, parsed.long_strings)
    if blob > settings.max_blob_chars:
        return f"base64/hex blob of {blob} chars at line {blob_line} > max_blob_chars {settings.max_blob_chars}"
    return None


def long_data_string(text: str, lengths: list[int], parsed: ParsedFile, settings: CodeSettings) -> str | None:
    length, line = longest_data_string(parsed, settings.max_string_literal_chars)
    if length > settings.max_string_literal_chars:
        return (
            f"data string literal of {length} chars at line {line} > max_string_literal_chars "
            f"{settings.max_string_literal_chars}"
        )
    return None


def symbol_soup(text: str, lengths: list[int], parsed: ParsedFile, settings: CodeSettings) -> str | None:
    non_space, alnum = character_counts(text)
    if non_space and alnum / non_space < settings.min_alnum_fraction:
        return f"alphanumeric fraction {alnum / non_space:.2f} < min_alnum_fraction {settings.min_alnum_fraction}"
    return None


# In the order the judge tries them (cheapest first), each named after the setting that bounds it.
DATA_DENSE_RULES: tuple[tuple[str, DataDenseRule], ...] = (
    ("max_line_length", long_line),
    ("max_mean_line_length", long_mean_line),
    ("max_blob_chars", long_blob),
    ("max_string_literal_chars", long_data_string),
    ("min_alnum_fraction", symbol_soup),
)


def longest_data_string(parsed: ParsedFile, min_chars: int) -> tuple[int, int]:
    """(length, line) of the longest str literal longer than ``min_chars`` that holds data, or (0, 0).

    Prose (help texts, attribute docstrings, documentation passed to functions) and code templates (SQL, C, HTML)
    read as text and are not data; a word list, a table, digits or one long regex alternation are. Bytes literals
    are left to max_blob_chars (their escapes are in the source text): ParsedFile keeps no bytes values, and a
    long one may be a verbose regex."""
    best = (0, 0)
    for value, line in parsed.long_strings:
        if len(value) > max(best[0], min_chars) and not reads_as_text(value):
            best = (len(value), line)
    return best


def reads_as_text(value: str) -> bool:
    """Whether a string's value reads as prose or code: several words to a line, words of ordinary length, and
    mostly letters. Measured on the strings over 1000 characters in 23,600 site-packages files: prose and
    templates have 2-15 words a line of 4-16 characters; tables and word lists one "word" a line or one word of
    thousands of characters; digit and number tables few letters."""
    words = value.split()
    if not words:
        return False
    lines = sum(1 for line in value.splitlines() if not line.isspace() and line)
    word_chars = sum(map(len, words))
    letters = word_chars - len(LETTER_RUN.sub("", "".join(words)))
    return (
        len(words) >= MIN_TEXT_WORDS_PER_LINE * lines
        and word_chars <= MAX_TEXT_WORD_CHARS * len(words)
        and letters >= MIN_TEXT_LETTER_FRACTION * word_chars
    )


def character_counts(text: str) -> tuple[int, int]:
    """(non-whitespace characters, letters and digits) of the text."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, ASCII_WHITESPACE)), len(data) - len(data.translate(None, ASCII_ALNUM))
    return sum(len(word) for word in text.split()), len(text) - len(ALNUM_RUN.sub("", text))


def judge_repetitive(text: str, settings: CodeSettings) -> str | None:
    """The detail of why a file is trivially repetitive, or None."""
    counted = counted_lines(text)
    if len(counted) < REPETITIVE_MIN_LINES:
        return None
    for _, rule in REPETITIVE_RULES:
        detail = rule(counted, settings)
        if detail is not None:
            return detail
    return None


def counted_lines(text: str) -> list[str]:
    """The stripped lines the repetitiveness rules look at: those of REPETITIVE_MIN_LINE_CHARS or more."""
    return [s for s in (line.strip() for line in text.splitlines()) if len(s) >= REPETITIVE_MIN_LINE_CHARS]


def periodic_lines(counted: list[str], settings: CodeSettings) -> str | None:
    """A block pasted over and over (one literal changed or not) repeats each line exactly one block length
    later. Maintained code shares lines too (the keyword list of get/post/put, the same field documentation in
    many classes), but at varying distances, since what lies between differs."""
    # Lines at the period are repeats, so the share cannot pass the threshold unless the repeats do; counting
    # repeats through a set is many times faster than the walk, and most files stop here.
    if len(counted) - len(set(counted)) <= settings.max_periodic_line_fraction * len(counted):
        return None
    fraction, period = periodic_fraction(counted)
    if fraction > settings.max_periodic_line_fraction:
        return (
            f"{fraction:.2f} of {len(counted)} lines repeat the line {period} lines above (> "
            f"max_periodic_line_fraction {settings.max_periodic_line_fraction})"
        )
    return None


def periodic_fraction(counted: list[str]) -> tuple[float, int]:
    """(share of lines, distance): the most common distance from a line back to its previous occurrence, and the
    share of lines at exactly that distance; (0.0, 0) when no line repeats."""
    last_seen: dict[str, int] = {}
    distances: dict[int, int] = {}
    for index, line in enumerate(counted):
        previous = last_seen.get(line)
        if previous is not None:
            distances[index - previous] = distances.get(index - previous, 0) + 1
        last_seen[line] = index
    if not distances:
        return 0.0, 0
    period = max(distances, key=distances.__getitem__)
    return distances[period] / len(counted), period


def duplicate_lines(counted: list[str], settings: CodeSettings) -> str | None:
    """Almost every line a copy of an earlier one, in whatever order."""
    repeats = len(counted) - len(set(counted))
    fraction = repeats / len(counted)
    if fraction > settings.max_duplicate_line_fraction:
        return (
            f"{repeats} of {len(counted)} lines repeat an earlier line ({fraction:.2f} > "
            f"max_duplicate_line_fraction {settings.max_duplicate_line_fraction})"
        )
    return None


REPETITIVE_RULES: tuple[tuple[str, Callable[[list[str], CodeSettings], str | None]], ...] = (
    ("max_periodic_line_fraction", periodic_lines),
    ("max_duplicate_line_fraction", duplicate_lines),
)
