"""Natural-Instruct collection: self-contained, documented top-level functions from the cleaned code.

A function qualifies when it has a docstring and parameters, and everything it refers to can come with it:
module-level imports (of installed, non-I/O modules) and module-level helpers (functions, classes, constants)
of the same file, taken transitively. The result is a small program that defines the function, which the
Semi-Instruct step runs in the sandbox. Every top-level function read is either kept or dropped with a reason.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import logging
import random
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import PositiveInt
from tqdm import tqdm

from ..io import Funnel, content_id, make_doc, path_list, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..settings import Settings
from ..text import doctests

log = logging.getLogger(__name__)

SOURCE = "natural_instruct"

# Modules whose use means the function touches the outside world (files, processes, network, interpreter
# state, clocks) or whose results are not reproducible between two runs.
IO_MODULES = frozenset(
    [
        "os",
        "sys",
        "subprocess",
        "socket",
        "shutil",
        "pathlib",
        "io",
        "tempfile",
        "glob",
        "fnmatch",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "telnetlib",
        "ssl",
        "select",
        "selectors",
        "multiprocessing",
        "threading",
        "concurrent",
        "asyncio",
        "signal",
        "ctypes",
        "mmap",
        "sqlite3",
        "dbm",
        "shelve",
        "pickle",
        "marshal",
        "logging",
        "time",
        "datetime",
        "uuid",
        "secrets",
        "getpass",
        "platform",
        "pty",
        "tty",
        "termios",
        "fcntl",
        "resource",
        "webbrowser",
        "requests",
        "urllib3",
        "aiohttp",
        "httpx",
        "builtins",
        "importlib",
        "pkgutil",
        "zipimport",
        "inspect",
        "gc",
        "atexit",
        "site",
        "sysconfig",
        "locale",
        "gettext",
        "tkinter",
        "turtle",
        "curses",
        "readline",
        "code",
        "codeop",
        "pdb",
        "cProfile",
        "profile",
        "trace",
        "tracemalloc",
        "faulthandler",
        "warnings",
    ]
)
# Imports that cost seconds and hundreds of megabytes in every sandbox run; the tiny budget cannot afford them.
HEAVY_MODULES = frozenset(
    [
        "torch",
        "tensorflow",
        "jax",
        "transformers",
        "pandas",
        "scipy",
        "sklearn",
        "matplotlib",
        "sympy",
        "numba",
        "llama_cpp",
        "datasets",
    ]
)
IO_BUILTINS = frozenset(
    [
        "open",
        "input",
        "print",
        "exec",
        "eval",
        "compile",
        "__import__",
        "exit",
        "quit",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "help",
        "memoryview",
    ]
)
BUILTIN_NAMES = frozenset(dir(builtins))
MODULE_DUNDERS = frozenset({"__name__", "__doc__"})

MAX_FUNCTION_LINES = 80
MAX_PROGRAM_LINES = 200
MAX_LITERALS = 12


@dataclass
class Binding:
    """One module-level statement that binds a name."""

    kind: str  # "import", "function", "class", "assign"
    node: ast.stmt
    module: str | None = None  # for imports: the module's top-level package ("" for relative imports)


@dataclass
class FileContext:
    repo: str
    path: str
    source: str
    lines: list[str]
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    lazy_annotations: bool = False  # `from __future__ import annotations`: annotations are never evaluated


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------------- input


def iter_code_files(docs: Iterable[dict]) -> Iterator[tuple[str, str, str]]:
    """(repo, path, source) for every Python file in code documents (one file per doc, or a whole repository
    with "# path: ..." headers)."""
    for doc in docs:
        meta = _meta(doc)
        repo = str(meta.get("repo") or "")
        path = str(meta.get("path") or "")
        text = doc.get("text") or ""
        if path and path.endswith(".py"):
            yield repo, path, text
        elif not path:
            yield from ((repo, p, s) for p, s in _split_repository_text(text))


_PATH_HEADER = re.compile(r"^# path: (\S+)[ \t]*$", re.MULTILINE)


def _split_repository_text(text: str) -> Iterator[tuple[str, str]]:
    headers = list(_PATH_HEADER.finditer(text))
    for index, match in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        if match.group(1).endswith(".py"):
            yield match.group(1), text[match.end() + 1 : end]


def _meta(doc: dict) -> dict:
    import json

    raw = doc.get("meta")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------------------------------------ analysis


def module_bindings(tree: ast.Module) -> dict[str, list[Binding]]:
    """Names bound by plain top-level statements. Names bound only inside module-level if/try blocks are left
    out on purpose: which branch runs depends on the environment, so a function needing them is not
    self-contained."""
    bindings: dict[str, list[Binding]] = {}

    def add(name: str, binding: Binding) -> None:
        bindings.setdefault(name, []).append(binding)

    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.asname or alias.name.split(".")[0], Binding("import", node, alias.name.split(".")[0]))
        elif isinstance(node, ast.ImportFrom):
            root = "" if node.level else (node.module or "").split(".")[0]
            for alias in node.names:
                if alias.name != "*":
                    add(alias.asname or alias.name, Binding("import", node, root))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add(node.name, Binding("function", node))
        elif isinstance(node, ast.ClassDef):
            add(node.name, Binding("class", node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name_node in ast.walk(target):
                    if isinstance(name_node, ast.Name):
                        add(name_node.id, Binding("assign", node))
    return bindings


def free_names(node: ast.AST, lazy_annotations: bool = False) -> set[str]:
    """Names a statement reads but does not bind itself: what it needs from module scope or builtins.

    An approximation of Python's scoping (a name bound anywhere inside counts as local everywhere inside);
    a wrong guess only makes the program fail in the sandbox, where it is then dropped. With
    ``lazy_annotations`` (the file has ``from __future__ import annotations``) names used only in annotations
    are never evaluated, so they are not needed.
    """
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        # A module-level assignment's targets are what it defines; its value (and, unless annotations are
        # lazy, its annotation) is what it needs.
        needed = free_names(node.value, lazy_annotations) if node.value is not None else set()
        if isinstance(node, ast.AnnAssign) and not lazy_annotations:
            needed |= free_names(node.annotation)
        return needed
    loaded: set[str] = set()
    bound: set[str] = set()
    for sub in _walk(node, lazy_annotations):
        if isinstance(sub, ast.Name):
            (loaded if isinstance(sub.ctx, (ast.Load, ast.Del)) else bound).add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name.split(".")[0]) for a in sub.names)
        elif (
            isinstance(sub, ast.ExceptHandler)
            and sub.name
            or isinstance(sub, (ast.MatchAs, ast.MatchStar))
            and sub.name
        ):
            bound.add(sub.name)
    return loaded - bound


_ANNOTATION_FIELDS = {
    ast.arg: ("annotation",),
    ast.FunctionDef: ("returns",),
    ast.AsyncFunctionDef: ("returns",),
    ast.AnnAssign: ("annotation",),
}


def _walk(node: ast.AST, skip_annotations: bool) -> Iterator[ast.AST]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        skipped = _ANNOTATION_FIELDS.get(type(current), ()) if skip_annotations else ()
        for name, value in ast.iter_fields(current):
            if name in skipped:
                continue
            if isinstance(value, ast.AST):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, ast.AST))


def _is_generator(func: ast.FunctionDef) -> bool:
    for sub in _walk_own_scope(func):
        if isinstance(sub, (ast.Yield, ast.YieldFrom)):
            return True
    return False


def _walk_own_scope(func: ast.AST) -> Iterator[ast.AST]:
    """ast.walk that does not descend into nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _module_available(name: str, cache: dict[str, bool]) -> bool:
    if name not in cache:
        try:
            cache[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            cache[name] = False
    return cache[name]


def check_function(func: ast.AST) -> None:
    """Cheap checks on the function itself, before its dependencies are resolved."""
    if isinstance(func, ast.AsyncFunctionDef):
        raise Rejected("async")
    assert isinstance(func, ast.FunctionDef)
    if func.name.startswith("test"):
        raise Rejected("test_function")
    if func.decorator_list:
        raise Rejected("decorated")
    if not ast.get_docstring(func):
        raise Rejected("no_docstring")
    params = func.args.posonlyargs + func.args.args + func.args.kwonlyargs
    if not params:
        raise Rejected("no_parameters")
    if params[0].arg in ("self", "cls"):
        raise Rejected("method_like")
    if func.args.vararg or func.args.kwarg:
        raise Rejected("variadic")
    if func.end_lineno - func.lineno + 1 > MAX_FUNCTION_LINES:
        raise Rejected("too_long", f"{func.end_lineno - func.lineno + 1} lines")
    if _is_generator(func):
        raise Rejected("generator")
    for sub in ast.walk(func):
        if isinstance(sub, (ast.Global, ast.Nonlocal)):
            raise Rejected("global_state")
        if isinstance(sub, (ast.Import, ast.ImportFrom)):
            root = "" if isinstance(sub, ast.ImportFrom) and sub.level else _import_root(sub)
            if root in IO_MODULES or root == "":
                raise Rejected("io_call", f"imports {root or 'a relative module'}")
        if isinstance(sub, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            raise Rejected("async")


def _import_root(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0]
    return node.names[0].name.split(".")[0]


def resolve_dependencies(func: ast.FunctionDef, ctx: FileContext, spec_cache: dict[str, bool]) -> list[Binding]:
    """The module-level statements the function needs, transitively; raises Rejected when one is unusable."""
    needed: dict[int, Binding] = {}
    lazy = ctx.lazy_annotations
    pending = sorted(free_names(func, lazy))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        found = ctx.bindings.get(name)
        if not found:
            if name in IO_BUILTINS:
                raise Rejected("io_call", f"calls {name}()")
            if name in BUILTIN_NAMES or name in MODULE_DUNDERS:
                continue
            raise Rejected("unresolved_name", name)
        for binding in found:
            if binding.node is func:
                continue  # recursion
            if binding.kind == "import":
                _check_import(binding, name, spec_cache)
            else:
                pending.extend(sorted(free_names(binding.node, lazy) - seen))
            needed[id(binding.node)] = binding
    return sorted(needed.values(), key=lambda b: (b.node.lineno, b.node.col_offset))


def _check_import(binding: Binding, name: str, spec_cache: dict[str, bool]) -> None:
    root = binding.module or ""
    if root == "":
        raise Rejected("relative_import", name)
    if root in IO_MODULES:
        raise Rejected("io_call", f"uses module {root}")
    if root in HEAVY_MODULES:
        raise Rejected("heavy_import", root)
    if not _module_available(root, spec_cache):
        raise Rejected("unavailable_import", root)


def _statement_text(binding: Binding, name_needed: set[str], ctx: FileContext) -> str:
    node = binding.node
    if binding.kind == "import":
        # Keep only the aliases the function uses: `import a, b` may bind names it never touches.
        aliases = [
            a
            for a in node.names
            if (a.asname or a.name.split(".")[0] if isinstance(node, ast.Import) else a.asname or a.name) in name_needed
        ]
        copy = (
            ast.ImportFrom(node.module, aliases, node.level)
            if isinstance(node, ast.ImportFrom)
            else ast.Import(aliases)
        )
        return ast.unparse(copy)
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "".join(ctx.lines[first - 1 : node.end_lineno]).rstrip() + "\n"


def build_program(func: ast.FunctionDef, deps: list[Binding], ctx: FileContext) -> str:
    """Imports first, then helpers in source order, then the function: original text, comments included."""
    needed_names = free_names(func, ctx.lazy_annotations)
    for binding in deps:
        needed_names |= free_names(binding.node, ctx.lazy_annotations)
    imports = [_statement_text(b, needed_names, ctx) for b in deps if b.kind == "import"]
    imports = list(dict.fromkeys(imports))
    others = [_statement_text(b, needed_names, ctx) for b in deps if b.kind != "import"]
    own = _statement_text(Binding("function", func), needed_names, ctx)
    parts = ["from __future__ import annotations\n"] if ctx.lazy_annotations else []
    if imports:
        parts.append("\n".join(imports) + "\n")
    parts.extend(others)
    parts.append(own)
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


# ---------------------------------------------------------------------------------------------- metadata


def describe_function(func: ast.FunctionDef) -> dict[str, Any]:
    """Signature, parameters (annotation and default as source), docstring, doctests and literals."""
    args = func.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = []
    for arg, default in zip(positional, defaults):
        params.append(_param(arg, default, "positional"))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(_param(arg, default, "keyword_only"))
    docstring = ast.get_docstring(func) or ""
    return {
        "function": func.name,
        "signature": _signature(func, params, annotated=True),
        "call_signature": _signature(func, params, annotated=False),
        "params": params,
        "returns": ast.unparse(func.returns) if func.returns else None,
        "docstring": docstring,
        "doctests": doctest_examples(docstring, func.name),
        "literals": compared_literals(func, [p["name"] for p in params]),
    }


def _param(arg: ast.arg, default: ast.expr | None, kind: str) -> dict:
    return {
        "name": arg.arg,
        "kind": kind,
        "annotation": ast.unparse(arg.annotation) if arg.annotation else None,
        "default": ast.unparse(default) if default is not None else None,
    }


def _signature(func: ast.FunctionDef, params: list[dict], annotated: bool) -> str:
    parts = []
    keyword_marker_done = False
    for param in params:
        if param["kind"] == "keyword_only" and not keyword_marker_done:
            parts.append("*")
            keyword_marker_done = True
        text = param["name"]
        if annotated and param["annotation"]:
            text += f": {param['annotation']}"
        if param["default"] is not None:
            text += f" = {param['default']}" if annotated and param["annotation"] else f"={param['default']}"
        parts.append(text)
    returns = f" -> {ast.unparse(func.returns)}" if annotated and func.returns else ""
    return f"{func.name}({', '.join(parts)}){returns}"


def doctest_examples(docstring: str, name: str) -> list[dict]:
    """``>>> name(...)`` examples from the docstring: the call's source and the expected output text."""
    found = []
    for example in doctests.examples_in(docstring):  # none when doctest refuses the docstring
        source = example.source.strip()
        try:
            expr = ast.parse(source, mode="eval").body
        except SyntaxError:
            continue
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == name:
            found.append({"call": source, "want": example.want.strip()})
    return found


def compared_literals(func: ast.FunctionDef, param_names: list[str]) -> dict[str, list]:
    """Constants the body compares each parameter with (``x == 3``, ``mode in ("a", "b")``, ``n > 10``):
    interesting test inputs. Key "*" holds constants compared with anything else."""
    found: dict[str, list] = {}

    def note(key: str, value: Any) -> None:
        if isinstance(value, (bool, int, float, str)) and not (isinstance(value, str) and len(value) > 40):
            bucket = found.setdefault(key, [])
            if value not in bucket and len(bucket) < MAX_LITERALS:
                bucket.append(value)

    for node in ast.walk(func):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = [o.id for o in operands if isinstance(o, ast.Name) and o.id in param_names]
        key = names[0] if names else "*"
        for operand in operands:
            if isinstance(operand, ast.Constant):
                note(key, operand.value)
            elif isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
                for element in operand.elts:
                    if isinstance(element, ast.Constant):
                        note(key, element.value)
    return {key: found[key] for key in sorted(found)}


# ------------------------------------------------------------------------------------------------- driver


def collect_from_source(
    repo: str, path: str, source: str, funnel: Funnel, spec_cache: dict[str, bool], seen_bodies: set[str]
) -> list[dict]:
    """All candidate functions of one file; every top-level function is counted in the funnel."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        funnel.extra["files_unparsable"] = funnel.extra.get("files_unparsable", 0) + 1
        return []
    ctx = FileContext(
        repo,
        path,
        source,
        source.splitlines(keepends=True),
        module_bindings(tree),
        lazy_annotations=_has_future_annotations(tree),
    )
    found = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        try:
            check_function(node)
            deps = resolve_dependencies(node, ctx, spec_cache)
            program = build_program(node, deps, ctx)
            if program.count("\n") > MAX_PROGRAM_LINES:
                raise Rejected("too_large", f"{program.count(chr(10))} lines with helpers")
            body_key = ast.dump(node)
            if body_key in seen_bodies:
                raise Rejected("duplicate")
            seen_bodies.add(body_key)
        except Rejected as rejected:
            funnel.drop(rejected.reason)
            continue
        meta = describe_function(node)
        meta.update(
            repo=repo,
            path=path,
            lineno=node.lineno,
            origin=f"{repo}/{path}:{node.name}",
            helpers=[_binding_name(b) for b in deps if b.kind != "import"],
            imports=sorted({b.module for b in deps if b.kind == "import"}),
        )
        found.append(make_doc(program, SOURCE, meta, id=content_id(repo, path, node.name, str(node.lineno))))
    return found


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )


def _binding_name(binding: Binding) -> str:
    node = binding.node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return ",".join(ast.unparse(t) for t in targets)


def collect_natural(shard_paths: Iterable[str | Path], max_functions: int | None, seed: int) -> tuple[list, dict]:
    """Read the cleaned code shards and collect qualifying functions, at most ``max_functions``.

    Files are visited in a seeded random order and the visit stops once ``max_functions`` candidates are
    found (functions beyond the cap in the last file are dropped as ``over_cap``), so a small cap reads a
    random sample of the files rather than all of them. Returns (documents sorted by origin, stats); the
    stats count every top-level function of every file visited.
    """
    funnel = Funnel("sft_collect")
    funnel.extra.update(docs_read=0, docs_not_code=0, files_total=0, files_read=0, files_unparsable=0)
    files: list[tuple[str, str, str]] = []
    for shard in sorted(str(p) for p in shard_paths):
        docs = read_docs(shard)
        funnel.extra["docs_read"] += len(docs)
        code_docs = [d for d in docs if d.get("source") == "code"]
        funnel.extra["docs_not_code"] += len(docs) - len(code_docs)
        files.extend(iter_code_files(code_docs))
    files.sort(key=lambda f: (f[0], f[1]))
    random.Random(seed).shuffle(files)
    funnel.extra["files_total"] = len(files)

    spec_cache: dict[str, bool] = {}
    seen_bodies: set[str] = set()
    candidates: list[dict] = []
    for repo, path, source in tqdm(files, desc="sft collect", file=sys.stderr, mininterval=5):
        if max_functions is not None and len(candidates) >= max_functions:
            break
        funnel.extra["files_read"] += 1
        if not _TOP_LEVEL_DEF.search(source):
            continue  # no top-level function to count; spares the parse
        candidates.extend(collect_from_source(repo, path, source, funnel, spec_cache, seen_bodies))
    chosen = candidates
    if max_functions is not None and len(candidates) > max_functions:
        chosen = candidates[:max_functions]
        funnel.drop("over_cap", len(candidates) - max_functions)
    chosen = sorted(chosen, key=_origin_key)
    funnel.keep(len(chosen))
    funnel.extra["with_doctests"] = sum(1 for d in chosen if _meta(d).get("doctests"))
    log.info("collected %d functions from %d of %d files", len(chosen), funnel.extra["files_read"], len(files))
    return chosen, funnel.to_dict()


_TOP_LEVEL_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]", re.MULTILINE)


def _origin_key(doc: dict) -> tuple:
    meta = _meta(doc)
    return (meta.get("repo", ""), meta.get("path", ""), meta.get("lineno", 0))


class SftCollectJob(Settings):
    """What rule sft_collect reads: the seed and ``sft.max_functions`` (so editing another SFT key re-runs
    nothing here)."""

    seed: int
    max_functions: PositiveInt


def run_sft_collect(settings: SftCollectJob, paths: RulePaths) -> dict:
    """Rule sft_collect: Natural-Instruct functions (self-contained, documented) from the cleaned code shards."""
    natural, stats = collect_natural(path_list(paths.input["code"]), settings.max_functions, settings.seed)
    write_docs(paths.output["natural"], natural)
    write_json(paths.output["stats"], stats)
    return stats
