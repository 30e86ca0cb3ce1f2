"""The code blocks of a docs page and the prose around them, read by the pinned libraries.

- Markdown: ``markdown-it-py`` (CommonMark) finds the fenced blocks, including those in list items and block
  quotes. A MyST directive fence (```` ```{code-block} python ````) is a code block in the directive's
  language; a MyST admonition fence (```` ```{note} ````) holds Markdown whose own blocks are found in turn.
- reStructuredText: ``docutils`` parses the page. Every directive is read (name, argument, options, content)
  but none is run: code directives (``code-block``, ``code``, ``sourcecode``, Sphinx's ``testcode``,
  ``doctest``, ...) become code blocks, ``highlight`` sets the language of later ``::`` blocks, and the content
  of any other directive (``note``, ``toctree``, ...) stays prose. ``::`` literal blocks are docutils' own.
- Doctests: the standard library's parser (:mod:`abacus_repro.text.doctests`) reads the ``>>>`` sessions left
  in the prose, one paragraph at a time.

The prose is the page's lines without those of its code blocks: what the language of a page is judged on.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from . import doctests

PYTHON_DIRECTIVES = {"testcode", "doctest", "jupyter-execute", "ipython"}
CODE_DIRECTIVES = {
    "code-block",
    "code",
    "sourcecode",
    "testcode",
    "doctest",
    "jupyter-execute",
    "ipython",
    "highlight",
    "literalinclude",
    "testsetup",
    "testoutput",
}
_OPTION = re.compile(r"^\s*:[\w-]+:")


@dataclass
class CodeBlock:
    kind: str  # fenced | directive | literal | doctest
    language: str
    text: str


def page_lines(text: str) -> list[str]:
    """The page's lines as both parsers number them (every Unicode line break ends a line)."""
    return text.splitlines()


# -- Markdown -----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


def _fence_language(words: list[str]) -> str:
    if words and words[0] in CODE_DIRECTIVES:  # MyST: ```{code-block} python
        return words[1] if len(words) > 1 else ("python" if words[0] in PYTHON_DIRECTIVES else "")
    return words[0] if words else ""


def _without_leading_options(lines: list[str]) -> list[str]:
    """A MyST fence's body without the ``:option: value`` lines it starts with."""
    start = 0
    while start < len(lines) and _OPTION.match(lines[start]):
        start += 1
    return lines[start:]


def markdown_blocks(text: str) -> tuple[list[CodeBlock], str]:
    """Fenced blocks of a Markdown page (MyST ``{code-block} python`` too) and the page without them."""
    lines = page_lines(text)
    blocks: list[CodeBlock] = []
    prose: list[str] = []
    cursor = 0
    for token in _markdown().parse("\n".join(lines)):
        if token.type != "fence" or token.map is None:
            continue
        start, end = token.map
        prose.extend(lines[cursor:start])
        cursor = end
        info = token.info.strip().lower()
        words = info.replace("{", " ").replace("}", " ").split()
        body = "\n".join(_without_leading_options(token.content.splitlines()))
        if info.startswith("{") and words and words[0] not in CODE_DIRECTIVES:
            # A MyST admonition (```{note}) holds prose, perhaps with code blocks of its own.
            inner_blocks, inner_prose = markdown_blocks(body)
            blocks.extend(inner_blocks)
            prose.append(inner_prose)
            continue
        blocks.append(CodeBlock("fenced", _fence_language(words), body))
    prose.extend(lines[cursor:])
    return blocks, "\n".join(prose)


# -- reStructuredText ---------------------------------------------------------------------------------------------
@dataclass
class _Directive:
    """One directive as docutils read it: its name and argument, and the lines it spans (0-based)."""

    name: str
    argument: str
    first_line: int  # the ``.. name::`` line
    content_start: int  # the first content line (``end`` when there is no content)
    end: int  # one past its last line


@dataclass
class _Literal:
    """A ``::`` literal block: its text and the lines of its content (0-based)."""

    text: str
    first_line: int
    end: int


class _AnyOption(dict):
    """Every option name is accepted and kept as text: the directives are read, not run."""

    def __missing__(self, name: str):
        from docutils.parsers.rst import directives

        return directives.unchanged


def _recording_directive():
    """A docutils directive class that records each directive it stands in for and produces nothing."""
    from docutils.parsers.rst import Directive, states

    class RecordedDirective(Directive):
        required_arguments = 0
        optional_arguments = 1
        final_argument_whitespace = True
        has_content = True
        option_spec = _AnyOption(name=None)  # not empty: docutils parses options only when there is a spec

        def run(self):
            if isinstance(self.state, states.SubstitutionDef):
                return []  # ``.. |name| replace:: text`` is prose, as it reads
            first = self.lineno - 1
            if self.content:
                content_start, end = self.content.offset(0), self.content.offset(len(self.content) - 1) + 1
            else:
                end = first + len(self.block_text.splitlines())
                content_start = end
            argument = self.arguments[0] if self.arguments else ""
            self.state.document.recorded_directives.append(
                _Directive(self.name.lower(), argument, first, content_start, end)
            )
            return []

    return RecordedDirective


@contextlib.contextmanager
def _directives_recorded() -> Iterator[None]:
    """While parsing, every directive name resolves to the recording directive (none of docutils' or Sphinx's
    directives runs: no file is included, nothing is executed). Restored afterwards; the docs filter parses
    one page at a time in one thread."""
    from docutils.parsers.rst import directives

    recorder = _recording_directive()
    original = directives.directive
    directives.directive = lambda name, language, document: (recorder, [])
    try:
        yield
    finally:
        directives.directive = original


def _parse_rst(lines: list[str]) -> tuple[list[_Directive], list[_Literal]]:
    """The directives and ``::`` literal blocks of a reST page, in page order."""
    import docutils.frontend
    import docutils.nodes
    import docutils.utils
    from docutils.parsers.rst import Parser

    parser = Parser()
    settings = docutils.frontend.get_default_settings(Parser)
    # Quiet and tolerant: a page with markup errors is still read (its errors are left in the tree, unreported).
    settings.report_level, settings.halt_level, settings.warning_stream = 5, 5, False
    document = docutils.utils.new_document("<page>", settings)
    document.recorded_directives = []
    with _directives_recorded():
        parser.parse("\n".join(lines), document)

    def literal(node) -> bool:  # the quoted copy of the source in an error message is not a block of the page
        return isinstance(node, docutils.nodes.literal_block) and not _inside_system_message(node)

    literals = []
    for node in document.findall(literal):
        if node.line is None:
            continue
        text = node.astext()
        literals.append(_Literal(text, node.line - 1, node.line - 1 + len(text.splitlines())))
    return document.recorded_directives, literals


def _inside_system_message(node) -> bool:
    import docutils.nodes

    parent = node.parent
    while parent is not None:
        if isinstance(parent, docutils.nodes.system_message):
            return True
        parent = parent.parent
    return False


def _skip_blank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def rst_blocks(text: str) -> tuple[list[CodeBlock], str]:
    """Code directives and ``::`` literal blocks of a reST page, and the page without them.

    Blank lines right after a block go with it; a ``::`` that introduces a literal block leaves the prose.
    """
    lines = page_lines(text)
    directives, literals = _parse_rst(lines)
    events = sorted([*directives, *literals], key=lambda event: event.first_line)
    blocks: list[CodeBlock] = []
    prose: list[str] = []
    default_language = ""  # set by ``.. highlight:: python``
    cursor = 0
    for event in events:
        first_line = event.first_line
        if first_line < cursor:
            continue  # inside a block already taken (a directive's content is never parsed, so: defensive)
        if isinstance(event, _Literal):
            prose.extend(_before_literal(lines[cursor:first_line]))
            blocks.append(CodeBlock("literal", default_language, textwrap.dedent(event.text).strip("\n")))
        else:
            prose.extend(lines[cursor:first_line])
            name, argument = event.name, event.argument.strip().lower()
            body = lines[event.content_start : event.end]
            if name == "highlight":
                default_language = argument.split()[0] if argument else ""
            elif name in CODE_DIRECTIVES and name != "literalinclude":
                language = "python" if name in PYTHON_DIRECTIVES else (argument.split()[0] if argument else "")
                code = textwrap.dedent("\n".join(body)).strip("\n")
                blocks.append(CodeBlock("directive", language or default_language, code))
            else:  # toctree, note, image, ...: what follows the directive line is prose, but its options
                after = _without_trailing_blank(lines[first_line + 1 : event.end])
                prose.extend(ln for ln in after if not _OPTION.match(ln))
        cursor = _skip_blank(lines, event.end)
    prose.extend(lines[cursor:])
    return blocks, "\n".join(prose)


def _without_trailing_blank(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return lines[:end]


def _before_literal(lines: list[str]) -> list[str]:
    """The prose before a literal block: its ``::`` marker and the blank lines after it removed."""
    lines = _without_trailing_blank(lines)
    if not lines:
        return []
    marker = lines[-1].rstrip()
    return lines[:-1] + [marker[:-2]] if marker.endswith("::") else lines


# -- doctests -----------------------------------------------------------------------------------------------------
def _paragraphs(lines: list[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of non-blank lines."""
    start = None
    for index, line in enumerate(lines):
        if line.strip() and start is None:
            start = index
        elif not line.strip() and start is not None:
            yield start, index
            start = None
    if start is not None:
        yield start, len(lines)


def doctest_blocks(prose: str) -> tuple[list[CodeBlock], str]:
    """``>>>`` sessions left in the prose (reST doctest blocks, Markdown pages pasted from a REPL): from the first
    example of a paragraph to the paragraph's end, as the doctest parser reads them."""
    lines = prose.splitlines()
    blocks: list[CodeBlock] = []
    kept: list[str] = []
    cursor = 0
    for start, end in _paragraphs(lines):
        examples = doctests.examples_in("\n".join(lines[start:end]))
        if not examples:
            continue
        first = start + examples[0].lineno
        kept.extend(lines[cursor:first])
        blocks.append(CodeBlock("doctest", "pycon", "\n".join(lines[first:end])))
        cursor = end
    kept.extend(lines[cursor:])
    return blocks, "\n".join(kept)


def code_blocks(text: str, fmt: str) -> tuple[list[CodeBlock], str]:
    """All code blocks of a page and its remaining prose; ``fmt`` is md or rst."""
    blocks, prose = rst_blocks(text) if fmt == "rst" else markdown_blocks(text)
    doctest_found, prose = doctest_blocks(prose)
    return blocks + doctest_found, prose
