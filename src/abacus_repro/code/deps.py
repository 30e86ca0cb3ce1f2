"""Recipe step 4: order a repository's files so that a module comes after the modules it imports.

Only imports among the repository's own (kept) files that run when the module loads count: absolute imports of
its packages and relative imports. A file's import path is its path ("pkg/sub/mod.py" -> pkg.sub.mod, "pkg/__init__.py" -> pkg); a leading
"src/", "lib/" or "python/" directory is also accepted as a source root. Cycles are broken deterministically:
when no file is free, the one with the fewest unplaced dependencies goes next (ties by path).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from ..imports import ImportStatement, absolute_module, package_of

SOURCE_ROOTS = ("src", "lib", "python")
# The repository root as a package above its top-level modules, so a top-level file's `from . import x` finds the
# repository's x.py (a name no module can have).
REPOSITORY = "<repository>"


def module_name(path: str) -> tuple[str, bool]:
    """(dotted module name, is a package __init__) of a repository-relative .py path."""
    parts = path[:-3].split("/") if path.endswith(".py") else path.split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def module_index(paths: Iterable[str]) -> dict[str, str]:
    """Module name -> path for every file (first path in sorted order wins a clash)."""
    index: dict[str, str] = {}
    for path in sorted(paths):
        name, _ = module_name(path)
        candidates = [name]
        head, _, rest = name.partition(".")
        if head in SOURCE_ROOTS and rest:
            candidates.append(rest)
        for candidate in candidates:
            if candidate:
                index.setdefault(candidate, path)
    return index


def _longest_known_prefix(name: str, index: dict[str, str]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in index:
            return index[candidate]
    return None


def _relative_target(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    """The repository module a relative import names ("" for the repository root); None when it climbs above the
    repository."""
    package = ".".join(part for part in (REPOSITORY, package_of(module, is_package)) if part)
    full = absolute_module(target, level, package)
    return None if full is None else full.removeprefix(REPOSITORY).removeprefix(".")


def resolve_imports(path: str, imports: Sequence[ImportStatement], index: dict[str, str]) -> set[str]:
    """Paths of the repository's files that ``path`` imports when it loads (itself excluded).

    Lazy imports (inside functions, under ``if TYPE_CHECKING:``) do not count: they are what code uses to break
    import cycles, and the module does not need them to be read first.
    """
    module, is_package = module_name(path)
    deps: set[str] = set()
    for kind, level, target, names, lazy in imports:
        if lazy:
            continue
        if kind == "import":
            found = _longest_known_prefix(target or "", index)
            if found:
                deps.add(found)
            continue
        full = _relative_target(module, is_package, level, target) if level else target or ""
        if full is None:
            continue
        # `from a.b import c`: c is the submodule a.b.c when that file exists, else a name defined in a.b.
        for name in names:
            if name != "*" and full and f"{full}.{name}" in index:
                deps.add(index[f"{full}.{name}"])
            elif name != "*" and not full and name in index:
                deps.add(index[name])
            elif full:
                found = _longest_known_prefix(full, index)
                if found:
                    deps.add(found)
    deps.discard(path)
    return deps


def dependency_order(deps: dict[str, set[str]]) -> tuple[list[str], int]:
    """(paths, cycles broken): every path after the paths it depends on, wherever a cycle allows."""
    remaining = {path: {d for d in targets if d in deps and d != path} for path, targets in deps.items()}
    dependents: dict[str, set[str]] = {path: set() for path in remaining}
    for path, targets in remaining.items():
        for target in targets:
            dependents[target].add(path)
    ready = [path for path, targets in remaining.items() if not targets]
    heapq.heapify(ready)
    placed: set[str] = set()
    order: list[str] = []
    cycles_broken = 0
    while len(order) < len(remaining):
        if not ready:
            # A cycle: place the least-blocked file first, so as many dependencies as possible still hold.
            cycles_broken += 1
            stuck = min((p for p in remaining if p not in placed), key=lambda p: (len(remaining[p] - placed), p))
            heapq.heappush(ready, stuck)
        path = heapq.heappop(ready)
        if path in placed:
            continue
        placed.add(path)
        order.append(path)
        for dependent in sorted(dependents[path]):
            if dependent not in placed and remaining[dependent] <= placed:
                heapq.heappush(ready, dependent)
    return order, cycles_broken
