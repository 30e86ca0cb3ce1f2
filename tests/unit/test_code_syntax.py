"""Recipe step 1: Python 3 parse, Python 2 markers in code only, syntax errors."""

import sysconfig
from pathlib import Path

import pytest

from abacus_repro.code.syntax import (
    analyse_source,
    analyse_tree,
    expand_indentation_tabs,
    judge_syntax,
    parse_python,
    python2_markers,
)

PY311 = (3, 11)

# The detail each snippet must produce -> the Python 2 snippet.
PY2_SNIPPETS = {
    "line 1: print statement": 'print "hello world"\n',
    # Parses in Python 3 as a tuple expression, but means a Python 2 print: caught on the tree.
    "line 2: print >> statement": 'import sys\nprint >>sys.stderr, "oops"\n',
    "line 3: except X, e": "try:\n    pass\nexcept ValueError, e:\n    pass\n",
    "line 1: backtick repr": "x = `42`\n",
    "line 1: <> operator": "if 1 <> 2:\n    pass\n",
    "line 1: exec statement": 'exec "x = 1"\n',
    "line 1: Python 2 number literal 0777": "mode = 0777\n",
    "line 1: Python 2 number literal 123L": "big = 123L\n",
    "line 1: ur'' string prefix": "s = ur'abc'\n",
    "line 1: raise E, message": 'raise ValueError, "bad"\n',
    "line 1: tuple parameter unpacking": "def f((a, b)):\n    return a\n",
    # Found in real Python 2 projects, each the only Python 2 construct of its file.
    "line 2: tuple parameter unpacking": "class A:\n    def name(self, (filename, line)):\n        return line\n",
    "line 1: print statement ": "print [x for x in range(3)]\n",
    "line 3: list comprehension over an unparenthesised tuple": "a = b = 1\n\nxs = [x for x in a, b if x]\n",
    "line 1: async used as a name": "from .async import Pool\n",
    "line 1: assignment to True": "def f(False=False, True=True):\n    return True\n",
    "line 1: Python 2 number literal 00777": "mode = 00777\n",
    "truncated \\uXXXX escape": 'path = "C:\\users\\me"\n',
}


@pytest.mark.parametrize("expected, source", sorted(PY2_SNIPPETS.items()))
def test_python2_syntax_is_python2(expected, source):
    parsed, reason, detail = judge_syntax(source, PY311)
    assert parsed is None
    assert reason == "python2"
    assert expected.strip() in detail


def test_tabs_mixed_with_spaces_are_python2_when_python2_reads_them():
    # Python 2 reads the tab as 8 columns, so both body lines are at the same depth; Python 3 refuses the mix.
    source = "def f(x):\n        y = x\n\treturn y\n"
    _parsed, reason, detail = judge_syntax(source, PY311)
    assert reason == "python2", detail
    assert "inconsistent use of tabs" in detail
    assert expand_indentation_tabs(source) == "def f(x):\n        y = x\n        return y\n"
    # Mixed tabs plus a print statement further down: the rest of the file is read with tabs expanded.
    assert judge_syntax(source + 'print "done"\n', PY311)[1] == "python2"


def test_python2_markers_point_at_lines():
    markers = python2_markers('x = 1\n\nprint "a"\nprint >>f, x\n')
    assert markers[0] == "line 3: print statement"
    assert markers[1] == "line 4: print statement"


def test_markers_inside_strings_comments_and_docstrings_are_not_python2():
    source = '''"""Docs that quote Python 2: print "hello", except ValueError, e: and `x` and 0777 and 1 <> 2."""


def show():
    """Old code looked like: exec "code" and print >>sys.stderr, "x"."""
    # print "this is a comment", raise E, "m"
    message = 'print "hello"  except X, e:  `repr`  123L  ur"x"'
    print(message)
    return message
'''
    parsed, reason, detail = judge_syntax(source, PY311)
    assert reason is None and detail == ""
    assert parsed is not None
    assert python2_markers(source) == []


def test_python3_uses_of_print_and_exec_are_not_markers():
    source = "print('x')\nexec('y = 1')\nf = print if True else None\nprint\n"
    assert python2_markers(source) == []
    assert judge_syntax(source, PY311)[1] is None


def test_broken_python3_is_syntax_error_not_python2():
    parsed, reason, detail = judge_syntax("def f(:\n    return 1\n", PY311)
    assert parsed is None
    assert reason == "syntax_error"
    assert detail.startswith("line 1:")


def test_broken_file_mentioning_python2_only_in_strings_is_syntax_error():
    source = 'x = "print \\"hi\\" except X, e"\ndef broken(:\n    pass\n'
    assert judge_syntax(source, PY311)[1] == "syntax_error"


NEWER_SYNTAX = """from __future__ import annotations

import os
from .models import (
    Model,
    Other as O,
)

type Alias = list[int]


class Box[T]:
    def get[U](self, other: U) -> T | U:
        import json
        return json.dumps(f"{os.sep!r:>{10}}")
"""


def test_syntax_newer_than_this_interpreter_is_read_from_source_when_ruff_accepts_it():
    # PEP 695 is Python 3.12: this interpreter's parser refuses it, ruff's (the pipeline asks it) does not.
    assert parse_python(NEWER_SYNTAX, PY311)[0] is None
    parsed, reason, detail = judge_syntax(NEWER_SYNTAX, PY311, newer_grammar_valid=True)
    assert reason is None and detail == ""
    assert ("import", 0, "os", (), False) in parsed.imports
    assert ("from", 1, "models", ("Model", "Other"), False) in parsed.imports
    assert ("import", 0, "json", (), True) in parsed.imports  # indented: counted as lazy
    # Without ruff's word the file is not Python 2 either: nothing in it is Python 2 syntax.
    assert judge_syntax(NEWER_SYNTAX, PY311)[1] == "syntax_error"


def test_analyse_source_finds_long_strings_outside_docstrings():
    source = '"""' + "d" * 200 + '"""\ntype X = int\nBLOB = "' + "ab" * 100 + '"\n'
    parsed = analyse_source(source)
    assert parsed.longest_string == (200, 3)
    assert not parsed.star_import
    assert analyse_source("from x import *\n").star_import


def test_analyse_tree_finds_long_strings_inside_long_expressions_only():
    long_value = "x" * 70
    source = (
        "def f(a=1, b='" + long_value + "'):\n"  # a default value
        "    return g(h(1), [2, {'k': ('" + long_value + "' 'y')}])\n"  # implicit concatenation, nested
        "short = 'abc'\n"
        "call(\n    'a',\n    b'" + "z" * 80 + "',\n)\n"  # bytes, multi-line call
    )
    parsed = analyse_tree(parse_python(source)[0])
    assert parsed.longest_string == (80, 6)
    assert sorted(parsed.long_strings) == [(long_value, 1), (long_value + "y", 2)]


def test_analyse_tree_skips_docstrings_and_finds_imports():
    source = (
        '"""' + "d" * 5000 + '"""\nimport os\nfrom . import sibling\nfrom x import *\n\n'
        "def f():\n    import json\n    return '" + "abc" * 30 + "'\n"
    )
    parsed = analyse_tree(parse_python(source)[0])
    assert parsed.longest_string == (90, 8)
    assert parsed.star_import
    assert ("import", 0, "os", (), False) in parsed.imports
    assert ("from", 1, None, ("sibling",), False) in parsed.imports
    assert ("import", 0, "json", (), True) in parsed.imports


def test_real_python2_file_from_the_standard_library():
    path = Path(sysconfig.get_paths()["stdlib"]) / "lib2to3" / "tests" / "data" / "py2_test_grammar.py"
    if not path.exists():
        pytest.skip(f"{path} not present in this Python installation")
    _parsed, reason, detail = judge_syntax(path.read_text(encoding="utf-8"), PY311)
    assert reason == "python2", detail
    py3 = path.with_name("py3_test_grammar.py")
    assert judge_syntax(py3.read_text(encoding="utf-8"), PY311)[1] is None
