"""Recipe step 4: files of a repository in dependency order; cycles broken deterministically."""

from abacus_repro.code.deps import dependency_order, module_index, module_name, resolve_imports
from abacus_repro.code.syntax import analyse_tree, parse_python


def imports_of(source):
    return analyse_tree(parse_python(source)[0]).imports


def order_of(files):
    index = module_index(files)
    deps = {path: resolve_imports(path, imports_of(src), index) for path, src in files.items()}
    return dependency_order(deps), deps


def test_module_names():
    assert module_name("pkg/sub/mod.py") == ("pkg.sub.mod", False)
    assert module_name("pkg/__init__.py") == ("pkg", True)
    assert module_index(["src/pkg/a.py"]) == {"src.pkg.a": "src/pkg/a.py", "pkg.a": "src/pkg/a.py"}


def test_absolute_and_relative_imports_resolve_to_repository_files():
    files = {
        "pkg/__init__.py": "from .api import run\n",
        "pkg/api.py": "from . import util\nfrom .core.engine import Engine\nimport json\n",
        "pkg/util.py": "import os\n",
        "pkg/core/__init__.py": "",
        "pkg/core/engine.py": "from pkg.util import helper\nfrom ..util import other\n",
        "main.py": "import pkg.api\nfrom pkg import util\n",
    }
    (order, cycles), deps = order_of(files)
    assert deps["pkg/api.py"] == {"pkg/util.py", "pkg/core/engine.py"}
    assert deps["pkg/core/engine.py"] == {"pkg/util.py"}
    assert deps["main.py"] == {"pkg/api.py", "pkg/util.py"}
    assert cycles == 0
    position = {path: i for i, path in enumerate(order)}
    for path, targets in deps.items():
        for target in targets:
            assert position[target] < position[path], (target, path)
    assert sorted(order) == sorted(files)


def test_lazy_imports_do_not_order():
    files = {
        "a.py": "import b\n",
        "b.py": "def f():\n    import a\n    return a\n\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    import a\n",
    }
    (order, cycles), deps = order_of(files)
    assert deps == {"a.py": {"b.py"}, "b.py": set()}
    assert order == ["b.py", "a.py"] and cycles == 0


def test_cycle_is_broken_deterministically():
    files = {
        "c.py": "import a\n",
        "a.py": "import b\n",
        "b.py": "import c\n",
        "d.py": "import a\n",
        "base.py": "",
    }
    (order, cycles), _ = order_of(files)
    assert cycles == 1
    # Least-blocked first, then path order: the cycle opens at a.py; d.py follows what it needs.
    assert order == ["base.py", "a.py", "c.py", "b.py", "d.py"]
    reordered = dict(reversed(list(files.items())))
    assert order_of(reordered)[0] == (order, cycles)
