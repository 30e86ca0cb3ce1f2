"""Recipe step 1: does the file parse as Python 3? One that does not is ``python2`` when it shows Python-2-only
syntax in its code (not in its strings or comments), else ``syntax_error``.

The running interpreter's ``ast.parse`` decides first (Python 3.11 here). A file it rejects gets a second
opinion from ruff's parser at ``target_version`` (see ruff_batch.syntax_errors), so code that uses newer syntax
(PEP 695 generics, PEP 701 f-strings) is still Python 3. Only a file that neither accepts is judged here:
``classify_failure`` looks for Python 2 on the token stream, so ``print "x"`` inside a docstring or a comment
never counts, and on the parser's own message for constructs only Python 2 accepts (tabs mixed with spaces,
``\\u`` escapes in byte strings). Python 3's tokenizer reads almost all Python 2 code; where it gives up, the
tokens read so far are used.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import tokenize
import warnings
from dataclasses import dataclass, field

from ..imports import ImportStatement, import_statements

STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
SKIPPED_TOKENS = {tokenize.NL, tokenize.COMMENT, tokenize.ENCODING}
# After "print"/"exec" these keywords make a Python 3 expression ("print if x else y"), not a statement.
EXPRESSION_KEYWORDS = {"if", "else", "and", "or", "in", "is", "for", "async", "await"}
# After "print " (with a space) these start a printed value in Python 2: `print [x]`, `print -1`, `print {}`.
# In Python 3 they may still parse (as `print[x]`, `print - 1`), so they count only in a file that fails.
PRINT_OPERAND_OPS = {"[", "{", "-", "+", "~", ">>", "`"}
UR_PREFIXES = {"ur", "UR", "Ur", "uR"}
# `async`/`await` followed or preceded by these are names, which Python 3.7+ forbids.
ASYNC_AS_NAME_NEXT = {"=", ",", ")", "]", "}", ".", ":"}
ASYNC_AS_NAME_PREV = {".", "def", "class", "import", "as"}
# Parser messages for constructs that only Python 2 accepts.
PY2_PARSER_MESSAGES = (
    ("Missing parentheses in call to 'print'", "print statement"),
    ("Missing parentheses in call to 'exec'", "exec statement"),
    ("(unicode error) 'unicodeescape'", "\\u or \\N escape in a byte string (not an escape in Python 2)"),
    ("leading zeros in decimal integer literals", "0777 octal literal"),
)
TAB_ERROR = "inconsistent use of tabs and spaces in indentation"
# Shorter string literals matter to no data-density test (and are most of all literals).
LONG_STRING_CHARS = 64
# Nodes that can hold a string literal. Names' contexts, operators and aliases hold none, so the walk skips them.
WALKED = (
    ast.stmt,
    ast.expr,
    ast.excepthandler,
    ast.arguments,
    ast.arg,
    ast.keyword,
    ast.comprehension,
    ast.withitem,
    ast.match_case,
    ast.pattern,
)
# Lists of these are bodies: visited as statements (for docstrings and `print >>f`).
STATEMENT_LIKE = (ast.stmt, ast.excepthandler, ast.match_case)
# Statements without a body: only their expressions are left to look at.
SIMPLE_STATEMENTS = {
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.Delete,
    ast.Raise,
    ast.Assert,
    ast.Global,
    ast.Nonlocal,
    ast.Pass,
    ast.Break,
    ast.Continue,
}
DOCSTRING_OWNERS = {ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef}
IMPORTS = {ast.Import, ast.ImportFrom}


@dataclass
class ParsedFile:
    """What the cleaning steps need from one successful parse, gathered in one walk over the tree (the tree
    itself is not kept: it is ten times the size of the source, and a shard holds many files at once)."""

    # Lazy when the import runs only later (inside a function, or under `if TYPE_CHECKING:`).
    imports: list[ImportStatement] = field(default_factory=list)
    star_import: bool = False
    # (length, line) of the longest string literal that is not a docstring.
    longest_string: tuple[int, int] = (0, 0)
    # (value, line) of every str literal (docstrings aside) long enough to hide a wrapped base64 blob.
    long_strings: list[tuple[str, int]] = field(default_factory=list)
    # Line of a `print >>f, x` statement: valid Python 3 syntax with Python 2 meaning.
    print_chevron_line: int | None = None


def parse_python(text: str, feature_version: tuple[int, int] = (3, 11)) -> tuple[ast.Module | None, str]:
    """(tree, "") or (None, what is wrong with its line number)."""
    try:
        with warnings.catch_warnings():
            # Invalid escape sequences and the like are warnings, not errors; they would only flood the log.
            warnings.simplefilter("ignore")
            return ast.parse(text, feature_version=feature_version), ""
    except SyntaxError as err:
        return None, f"line {err.lineno}: {err.msg}"
    except (ValueError, RecursionError, MemoryError) as err:
        return None, f"{type(err).__name__}: {err}"


def analyse_tree(tree: ast.Module) -> ParsedFile:
    """The imports (abacus_repro.imports: whether each runs at import time) and star imports, then one pass over
    the tree for the longest non-docstring string literal, long string literals, and `print >>f` statements.

    This is the costliest step after the parse itself, so it visits every statement but only the expressions
    that can hold a long string: an expression whose source spans fewer than LONG_STRING_CHARS columns on one
    line cannot (a literal's value is never longer than its source), and most expressions are that short.
    """
    parsed = ParsedFile(imports=import_statements(tree))
    parsed.star_import = any("*" in statement.names for statement in parsed.imports)
    docstrings: set[int] = set()
    _note_docstring(tree, docstrings)
    statements: list[ast.AST] = list(reversed(tree.body))
    expressions: list[ast.AST] = []
    while statements:
        node = statements.pop()
        kind = type(node)
        if kind in IMPORTS:
            continue  # an import holds no string literal
        if kind is ast.Expr:
            if parsed.print_chevron_line is None and _is_print_chevron(node.value):
                parsed.print_chevron_line = node.lineno
            if id(node.value) not in docstrings and _may_hold_long_string(node):
                expressions.append(node.value)
            continue
        if kind in SIMPLE_STATEMENTS:
            if _may_hold_long_string(node):
                expressions.append(node)
            continue
        if kind in DOCSTRING_OWNERS:
            _note_docstring(node, docstrings)
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                if value and isinstance(value[0], STATEMENT_LIKE):
                    statements.extend(reversed(value))
                else:
                    expressions.extend(value)
            elif isinstance(value, ast.AST):
                expressions.append(value)
    longest = (0, 0)
    while expressions:
        node = expressions.pop()
        if type(node) is ast.Constant:
            value = node.value
            if isinstance(value, (str, bytes)) and len(value) >= LONG_STRING_CHARS:
                if len(value) > longest[0]:
                    longest = (len(value), node.lineno)
                if isinstance(value, str):
                    parsed.long_strings.append((value, node.lineno))
            continue
        if not isinstance(node, WALKED) or not _may_hold_long_string(node):
            continue
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                expressions.extend(value)
            elif isinstance(value, ast.AST):
                expressions.append(value)
    parsed.longest_string = longest
    parsed.long_strings.sort(key=lambda item: item[1])
    return parsed


def _note_docstring(owner: ast.AST, docstrings: set[int]) -> None:
    body = owner.body
    if (
        body
        and type(body[0]) is ast.Expr
        and type(body[0].value) is ast.Constant
        and isinstance(body[0].value.value, str)
    ):
        docstrings.add(id(body[0].value))


def _may_hold_long_string(node: ast.AST) -> bool:
    """False when the node's source is one line shorter than LONG_STRING_CHARS (nodes without a position, such
    as ast.arguments, may always hold one)."""
    end_line = getattr(node, "end_lineno", None)
    if end_line is None or end_line != node.lineno:
        return True
    return node.end_col_offset - node.col_offset >= LONG_STRING_CHARS


def _is_print_chevron(value: ast.expr) -> bool:
    """`print >>f, x` parses in Python 3 as the tuple (print >> f, x): Python 2 code that happens to parse."""
    if isinstance(value, ast.Tuple) and value.elts:
        value = value.elts[0]
    return (
        isinstance(value, ast.BinOp)
        and isinstance(value.op, ast.RShift)
        and isinstance(value.left, ast.Name)
        and value.left.id == "print"
    )


# ------------------------------------------------------------------- files only a newer parser reads (no tree)

IMPORT_LINE = re.compile(r"^([ \t]*)(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(.+)|import[ \t]+(.+))$", re.MULTILINE)
IMPORTED_NAME = re.compile(r"[\w.]+|\*")


def analyse_source(text: str) -> ParsedFile:
    """What analyse_tree gives, read from lines and tokens for a file that Python 3.11's parser rejects but a
    newer grammar accepts (about 0.2% of modern files). Imports come from import lines (an indented import
    counts as lazy) and string literals from the tokens the tokenizer reads."""
    parsed = ParsedFile()
    for match in IMPORT_LINE.finditer(text):
        indent, dots, module, from_names, plain = match.groups()
        lazy = bool(indent)
        if plain is not None:
            for part in _import_clause(plain, text, match.end()).split(","):
                name = IMPORTED_NAME.match(part.strip())
                if name:
                    parsed.imports.append(ImportStatement("import", 0, name.group(), (), lazy))
            continue
        names = tuple(
            n.group()
            for part in _import_clause(from_names, text, match.end()).split(",")
            if (n := IMPORTED_NAME.match(part.strip().lstrip("(").strip()))
        )
        if "*" in names:
            parsed.star_import = True
        parsed.imports.append(ImportStatement("from", len(dots), module or None, names, lazy))
    longest = (0, 0)
    previous = None
    for tok in code_tokens(text):
        # A string that starts a statement is a docstring (or a bare string statement): not data.
        if tok.type == tokenize.STRING and previous is not None and previous.type not in STATEMENT_START:
            value = _literal_value(tok.string)
            if value is not None and len(value) >= LONG_STRING_CHARS:
                if len(value) > longest[0]:
                    longest = (len(value), tok.start[0])
                if isinstance(value, str):
                    parsed.long_strings.append((value, tok.start[0]))
        if tok.type not in SKIPPED_TOKENS:
            previous = tok
    parsed.longest_string = longest
    return parsed


def _import_clause(first_line: str, text: str, end: int) -> str:
    """The names of an import, joined over the following lines when they are in parentheses."""
    clause = first_line.split("#", 1)[0]
    if "(" in clause and ")" not in clause:
        close = text.find(")", end)
        clause += text[end : close if close >= 0 else len(text)]
    return clause.replace("(", " ").replace(")", " ").replace("\\", " ")


def _literal_value(source: str) -> str | bytes | None:
    """A string token's value (None for f-strings and anything the literal reader refuses)."""
    prefix = source[: len(source) - len(source.lstrip("rRbBuUfF"))]
    if "f" in prefix.lower():
        return source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(source)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


# ----------------------------------------------------------------------------- why a file does not parse


def code_tokens(text: str) -> list[tokenize.TokenInfo]:
    """The file's tokens, as far as Python 3's tokenizer gets (Python 2 code may stop it part-way)."""
    tokens: list[tokenize.TokenInfo] = []
    try:
        tokens.extend(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        pass
    return tokens


def python2_markers(text: str, limit: int = 3) -> list[str]:
    """Python-2-only syntax in the code (strings and comments are single tokens, so they are never looked into).

    Some markers (`print [x]`, `async` as a name) are only Python 2 in a file that Python 3 rejects; callers ask
    only about such files (a file that parses is judged on its tree).
    """
    tokens = [t for t in code_tokens(text) if t.type not in SKIPPED_TOKENS]
    found: list[str] = []

    def add(line: int, what: str) -> None:
        if len(found) < limit:
            found.append(f"line {line}: {what}")

    brackets: list[str] = []
    for i, tok in enumerate(tokens):
        if len(found) >= limit:
            break
        if tok.type == tokenize.OP and tok.string in "([{":
            brackets.append(tok.string)
        elif tok.type == tokenize.OP and tok.string in ")]}" and brackets:
            brackets.pop()
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        adjacent = nxt is not None and nxt.start == tok.end
        at_statement_start = prev is None or prev.type in STATEMENT_START or prev.string in (":", ";")
        line = tok.start[0]
        word = tok.string if tok.type == tokenize.NAME else None
        if word in ("print", "exec") and at_statement_start and nxt and _starts_statement_operand(nxt, adjacent):
            add(line, f"{word} statement")
        elif word == "except" and _top_level_comma(tokens, i + 1, ":"):
            add(line, "except X, e")
        elif word == "raise" and _top_level_comma(tokens, i + 1, None):
            add(line, "raise E, message")
        elif tok.string == "`":
            add(line, "backtick repr")
        elif tok.string == "<>" or (tok.string == "<" and adjacent and nxt.string == ">"):
            add(line, "<> operator")
        elif tok.type == tokenize.NUMBER and _is_py2_number(tok, nxt, adjacent):
            add(line, f"Python 2 number literal {tok.string}{nxt.string if adjacent and nxt else ''}")
        elif word in UR_PREFIXES and adjacent and nxt.type == tokenize.STRING:
            add(line, "ur'' string prefix")
        elif word in ("def", "lambda") and _has_tuple_parameter(tokens, i):
            add(line, "tuple parameter unpacking")
        elif (
            word in ("async", "await")
            and nxt is not None
            and (
                nxt.string in ASYNC_AS_NAME_NEXT
                or nxt.type == tokenize.NEWLINE
                or (prev is not None and prev.string in ASYNC_AS_NAME_PREV)
            )
        ):
            add(line, f"{word} used as a name")
        elif word == "for" and brackets and brackets[-1] == "[" and _comprehension_over_tuple(tokens, i + 1):
            add(line, "list comprehension over an unparenthesised tuple")
        elif word in ("True", "False") and nxt is not None and nxt.string == "=":
            add(line, f"assignment to {word}")
    return found


def _starts_statement_operand(nxt: tokenize.TokenInfo, adjacent: bool) -> bool:
    if nxt.type in (tokenize.STRING, tokenize.NUMBER):
        return True
    if nxt.type == tokenize.NAME:
        return not (keyword.iskeyword(nxt.string) and nxt.string in EXPRESSION_KEYWORDS)
    return nxt.string in ("`", ">>") or (not adjacent and nxt.string in PRINT_OPERAND_OPS)


def _top_level_comma(tokens: list[tokenize.TokenInfo], start: int, stop: str | None) -> bool:
    """A comma outside brackets before ``stop`` (or the end of the logical line)."""
    depth = 0
    for tok in tokens[start:]:
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or (depth == 0 and stop and tok.string == stop):
            return False
        if tok.string in "([{" and tok.type == tokenize.OP:
            depth += 1
        elif tok.string in ")]}" and tok.type == tokenize.OP:
            depth -= 1
        elif tok.string == "," and depth == 0:
            return True
    return False


def _comprehension_over_tuple(tokens: list[tokenize.TokenInfo], start: int) -> bool:
    """`[x for x in a, b]`: Python 2 read the bare tuple after `in`; Python 3 wants (a, b)."""
    depth, after_in = 0, False
    for tok in tokens[start:]:
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            return False
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0 and tok.type == tokenize.NAME and tok.string in ("in", "for", "if"):
            if after_in and tok.string != "in":
                return False
            after_in = after_in or tok.string == "in"
        elif depth == 0 and after_in and tok.string == ",":
            return True
    return False


def _has_tuple_parameter(tokens: list[tokenize.TokenInfo], start: int) -> bool:
    """`def f(a, (b, c)):` or `lambda (a, b): ...`: a parenthesised parameter, gone in Python 3."""
    if tokens[start].string == "def":
        if start + 2 >= len(tokens) or tokens[start + 2].string != "(":
            return False
        position, depth, closing = start + 3, 1, None
    else:
        position, depth, closing = start + 1, 0, ":"
    expect_parameter = True
    for tok in tokens[position:]:
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            return False
        if tok.type == tokenize.OP and tok.string in "([{":
            if expect_parameter and tok.string == "(" and depth == (0 if closing else 1):
                return True
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
            if depth == 0 and not closing:
                return False
        elif closing and depth == 0 and tok.string == closing:
            return False
        expect_parameter = tok.string == "," and depth == (0 if closing else 1)
    return False


def _is_py2_number(tok: tokenize.TokenInfo, nxt: tokenize.TokenInfo | None, adjacent: bool) -> bool:
    """0777 (old octal: the tokenizer splits it into "0" "777") and 123L / 0xFFL (long suffix)."""
    s = tok.string
    if len(s) > 1 and s[0] == "0" and s.isdigit() and s.strip("0"):
        return True
    if s.endswith(("L", "l")) and s[:-1].isalnum():
        return True
    if adjacent and nxt is not None:
        # "0777" and "00777" reach us as "0" "777" and "00" "777".
        if s.isdigit() and not s.strip("0") and nxt.type == tokenize.NUMBER and nxt.string[0].isdigit():
            return True
        if nxt.type == tokenize.NAME and nxt.string in ("L", "l"):
            return True
    return False


def expand_indentation_tabs(text: str) -> str:
    """Leading tabs as Python 2 read them (to the next multiple of 8 columns), so a file that mixes tabs and
    spaces can be parsed again."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.lstrip(" \t\f")
        if "\t" in line[: len(line) - len(stripped)]:
            lines[index] = line[: len(line) - len(stripped)].expandtabs(8) + stripped
    return "".join(lines)


def classify_failure(text: str, error: str, feature_version: tuple[int, int] = (3, 11)) -> tuple[str, str]:
    """("python2" | "syntax_error", detail) for a file that no Python 3 parser accepts."""
    if TAB_ERROR in error:
        expanded = expand_indentation_tabs(text)
        tree, expanded_error = parse_python(expanded, feature_version)
        if tree is not None:
            return "python2", f"{error} (Python 2 reads a tab as up to 8 columns; the file parses that way)"
        # The tabs were not the only problem: look at the rest of the file as Python 2 would have read it.
        text, error = expanded, f"{error}; with tabs as 8 columns, {expanded_error}"
    markers = python2_markers(text)
    if markers:
        return "python2", f"{error}; Python 2 syntax: {'; '.join(markers)}"
    for message, what in PY2_PARSER_MESSAGES:
        if message in error:
            return "python2", f"{error}; Python 2 syntax: {what}"
    return "syntax_error", error


def judge_syntax(
    text: str, feature_version: tuple[int, int], newer_grammar_valid: bool = False
) -> tuple[ParsedFile | None, str | None, str]:
    """(parsed file, None, "") when the file is Python 3; else (None, "python2" | "syntax_error", detail).

    ``newer_grammar_valid``: ruff's parser, at the target version, found no syntax error in the file (the
    pipeline asks it, in batches, about the files ``ast.parse`` rejects).
    """
    tree, error = parse_python(text, feature_version)
    if tree is None:
        if newer_grammar_valid:
            return analyse_source(text), None, ""
        reason, detail = classify_failure(text, error, feature_version)
        return None, reason, detail
    return judge_tree(tree)


def judge_tree(tree: ast.Module) -> tuple[ParsedFile | None, str | None, str]:
    """A file that parses is Python 3, unless it holds a `print >>f, x` statement."""
    parsed = analyse_tree(tree)
    if parsed.print_chevron_line is not None:
        return None, "python2", f"line {parsed.print_chevron_line}: print >> statement"
    return parsed, None, ""
