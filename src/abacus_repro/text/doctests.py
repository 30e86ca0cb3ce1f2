"""Doctest examples, read by the standard library's parser: the one reader of ``>>>`` examples in the project.

The docs filter uses it to find interactive sessions in a page's prose and to read the Python of a doctest
block; the SFT collector (abacus_repro.sft.collect) uses it to find a function's examples in its docstring.
"""

from __future__ import annotations

import doctest

_PARSER = doctest.DocTestParser()


def examples_in(text: str) -> list[doctest.Example]:
    """The examples in ``text`` as ``doctest`` reads them (``source`` without prompts, ``want``, ``lineno``).

    None when doctest refuses the text: a prompt without its blank (``>>>x``), or continuation or output lines
    indented less than their prompt.
    """
    try:
        return _PARSER.get_examples(text)
    except ValueError:
        return []


def doctest_source(text: str) -> str:
    """The Python of every example in ``text``, prompts removed, in order ("" when there is none)."""
    return "".join(example.source for example in examples_in(text))
