"""What a Python file imports, read statically with ``ast`` (nothing is executed): the one scanner behind code
cleaning's dependency order (recipe step 4), the provenance code closure and the conda environments' package list
(workflow/envs/update_envs.py).

Relative imports are resolved by the standard library's own rule (``importlib.util.resolve_name``).
"""

from __future__ import annotations

import ast
import importlib.util
from typing import Literal, NamedTuple

# The fields that hold statements (bodies, branches, handlers, match cases): an import can sit only there.
BODY_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")  # in source order
FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
IMPORTS = (ast.Import, ast.ImportFrom)


class ImportStatement(NamedTuple):
    """One import: ``import a.b`` is ("import", 0, "a.b", (), lazy), one per name it imports; ``from ..x import
    y, z`` is ("from", 2, "x", ("y", "z"), lazy) and ``from . import y`` has module None."""

    kind: Literal["import", "from"]
    level: int
    module: str | None
    names: tuple[str, ...]
    # Runs only later, not when the module loads: inside a function, or under `if TYPE_CHECKING:`.
    lazy: bool


def import_statements(tree: ast.Module) -> list[ImportStatement]:
    """Every import statement of a parsed file, at any depth, in source order."""
    found: list[ImportStatement] = []
    pending: list[tuple[ast.AST, bool]] = [(stmt, False) for stmt in reversed(tree.body)]
    while pending:
        node, lazy = pending.pop()
        if isinstance(node, IMPORTS):
            found.extend(statements_of(node, lazy))
            continue
        if isinstance(node, ast.If) and is_type_checking(node.test):
            pending.extend((child, lazy) for child in reversed(node.orelse))
            pending.extend((child, True) for child in reversed(node.body))
            continue
        child_lazy = lazy or isinstance(node, FUNCTION_DEFS)
        for name in reversed(BODY_FIELDS):
            children = getattr(node, name, None)
            if children:
                pending.extend((child, child_lazy) for child in reversed(children))
    return found


def statements_of(node: ast.Import | ast.ImportFrom, lazy: bool) -> list[ImportStatement]:
    """One ImportStatement per imported module of an ``import`` node; one for a ``from`` node."""
    if isinstance(node, ast.Import):
        return [ImportStatement("import", 0, alias.name, (), lazy) for alias in node.names]
    return [ImportStatement("from", node.level or 0, node.module, tuple(alias.name for alias in node.names), lazy)]


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` / `if typing.TYPE_CHECKING:`: imports for type checkers only."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def package_of(module: str, is_package: bool) -> str:
    """The package a module's relative imports start from: a package's ``__init__`` is its own package."""
    return module if is_package else module.rpartition(".")[0]


def absolute_module(module: str | None, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><module> import ...`` written in ``package``; None when the import
    climbs above the top-level package (or is relative with no package to start from)."""
    if not level:
        return module or ""
    try:
        return importlib.util.resolve_name("." * level + (module or ""), package)
    except ImportError:
        return None
