"""The one import scanner (abacus_repro.imports): every import at any depth, which of them are lazy, and relative
imports resolved by the standard library's rule."""

from __future__ import annotations

import ast

from abacus_repro.imports import ImportStatement, absolute_module, import_statements, package_of

SOURCE = """\
import os, json.decoder
from . import sibling
from ..pkg.mod import name as alias, other
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from collections.abc import Iterator
else:
    import csv
try:
    import tomllib
except ImportError:
    import tomli as tomllib
else:
    import site
finally:
    import gc
class Thing:
    import re
    def method(self):
        import zlib
match os.name:
    case "nt":
        from .windows import w
"""


def test_every_import_in_source_order_with_its_laziness():
    found = import_statements(ast.parse(SOURCE))
    assert found == [
        ImportStatement("import", 0, "os", (), False),
        ImportStatement("import", 0, "json.decoder", (), False),
        ImportStatement("from", 1, None, ("sibling",), False),
        ImportStatement("from", 2, "pkg.mod", ("name", "other"), False),
        ImportStatement("from", 0, "typing", ("TYPE_CHECKING",), False),
        ImportStatement("from", 0, "collections.abc", ("Iterator",), True),  # for type checkers only
        ImportStatement("import", 0, "csv", (), False),  # the else branch runs
        ImportStatement("import", 0, "tomllib", (), False),
        ImportStatement("import", 0, "tomli", (), False),
        ImportStatement("import", 0, "site", (), False),
        ImportStatement("import", 0, "gc", (), False),
        ImportStatement("import", 0, "re", (), False),  # a class body runs when the module loads
        ImportStatement("import", 0, "zlib", (), True),  # a function body does not
        ImportStatement("from", 1, "windows", ("w",), False),
    ]


def test_relative_imports_resolve_as_python_resolves_them():
    assert package_of("pkg.sub.mod", is_package=False) == "pkg.sub"
    assert package_of("pkg.sub", is_package=True) == "pkg.sub"
    assert absolute_module("x", 1, "pkg.sub") == "pkg.sub.x"
    assert absolute_module(None, 1, "pkg.sub") == "pkg.sub"
    assert absolute_module("y", 2, "pkg.sub") == "pkg.y"
    assert absolute_module("os.path", 0, "pkg.sub") == "os.path"
    assert absolute_module("z", 3, "pkg.sub") is None  # above the top-level package
    assert absolute_module("z", 1, "") is None  # a relative import outside any package
