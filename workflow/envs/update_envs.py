"""Write workflow/envs/<name>.yaml, the conda environment each rule names, from the code the rules run and requirements.lock.

    .venv/bin/python workflow/envs/update_envs.py          # rewrite the files
    .venv/bin/python workflow/envs/update_envs.py --check  # exit 1 and name the files that are out of date

For every environment: the rules that name it (their `conda:`), the scripts those rules run, the abacus_repro
subpackages the scripts import (whole subpackages: helper modules started as subprocesses are not imported), and
the third-party distributions all that code imports; then everything those distributions require, transitively.
Each is pinned at requirements.lock's version, so `--sdm conda` installs what the venv runs, nothing resolved anew.

requirements.lock is the single source of pins: a distribution the code needs but the lock does not pin is an
error here, not a guess. The project's own code is not installed into the environments: the workflow puts this
checkout's src/ on PYTHONPATH, so a conda environment holds dependencies only and needs no rebuild per commit.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from abacus_repro.imports import ImportStatement, absolute_module, import_statements, package_of

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "workflow" / "envs"
RULES = REPO / "workflow" / "rules"
SRC = REPO / "src"
PACKAGE = "abacus_repro"
# The interpreter the lock was made with (pyproject: >=3.11,<3.12) and the pip the Makefile installs.
PYTHON = "3.11.7"
PIP = "25.3"
CHANNELS = ["conda-forge", "nodefaults"]
# Imported by a library at run time rather than by our code, so the import scan cannot see them; included when
# requirements.lock pins them. DeepSpeed is loaded by accelerate when train.deepspeed is set (GPU runs).
# sentencepiece reads its model files through protobuf without declaring it (the published checkpoint's tokenizer).
RUNTIME_ONLY = {"train": ["deepspeed", "protobuf"]}
# Modules that are part of Python or of the Snakemake process that runs the script (its preamble puts
# Snakemake's own installation on sys.path), not something the environment must provide.
NOT_DISTRIBUTIONS = {PACKAGE, "snakemake"}
# pip freeze leaves these out of a lock; pip and conda provide them.
UNLOCKED_TOOLS = {"pip", "setuptools", "wheel"}
PURPOSE = {
    "data": "ingest, code cleaning, text filtering, SFT data, mixture and provenance",
    "train": "tokenizer, model initialisation, tokenization and every training phase",
    "eval": "evaluation (evalplus, lm-eval) and the summary",
    "export": "GGUF export, its verification in llama.cpp, and the Modelfile",
}

_RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
_DIRECTIVE = r"^\s+{name}:\s*(?:\n\s+)?[rf]?[\"']([^\"']+)[\"']"


def rule_blocks(rules_dir: Path = RULES) -> dict[str, tuple[Path, str]]:
    """Every rule in the workflow's rule files: name -> (file, the text of its block)."""
    blocks = {}
    for path in sorted(rules_dir.glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        starts = list(_RULE.finditer(text))
        for index, match in enumerate(starts):
            end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
            blocks[match.group(1)] = (path, text[match.start() : end])
    return blocks


def directive(block: str, name: str) -> str | None:
    """The string value of a rule directive (`conda:`, `script:`), or None."""
    match = re.search(_DIRECTIVE.format(name=name), block, re.MULTILINE)
    return match.group(1) if match else None


def rules_by_env(rules_dir: Path = RULES) -> dict[str, dict[str, Path | None]]:
    """env name -> {rule: its script (None for a rule without one)}; a rule without `conda:` is an error."""
    envs: dict[str, dict[str, Path | None]] = {}
    for rule, (path, block) in rule_blocks(rules_dir).items():
        conda = directive(block, "conda")
        if conda is None:
            raise ValueError(f"rule {rule} ({path.name}) names no conda environment")
        env_file = (path.parent / conda).resolve()
        if env_file.parent != ENVS.resolve() or env_file.suffix != ".yaml":
            raise ValueError(f"rule {rule} names {conda}, not a file workflow/envs/<name>.yaml")
        script = directive(block, "script")
        envs.setdefault(env_file.stem, {})[rule] = (path.parent / script).resolve() if script else None
    return envs


def _imports(path: Path) -> list[ImportStatement]:
    """Every import statement, at any depth (lazy imports too)."""
    return import_statements(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))


def _module_package(path: Path) -> str:
    """The dotted package a source file under src/ belongs to ("" for a script outside it)."""
    if not path.is_relative_to(SRC):
        return ""
    return package_of(".".join(path.relative_to(SRC).with_suffix("").parts), path.name == "__init__.py")


def _subpackage_files(subpackage: str) -> list[Path]:
    base = SRC / PACKAGE / subpackage
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    single = SRC / PACKAGE / f"{subpackage}.py"
    return [single] if single.is_file() else []


def third_party_modules(scripts: Iterable[Path]) -> set[str]:
    """Top-level third-party modules the scripts and the abacus_repro subpackages they reach import."""
    found: set[str] = set()
    seen_files: set[Path] = set()
    queue = [path for path in scripts if path is not None]
    # Importing anything from the package runs its __init__; its top-level modules (rules, io, settings) come
    # along only where an import reaches them, like subpackages.
    queue.append(SRC / PACKAGE / "__init__.py")
    while queue:
        path = queue.pop()
        if path in seen_files or not path.is_file():
            continue
        seen_files.add(path)
        for statement in _imports(path):
            absolute = absolute_module(statement.module, statement.level, _module_package(path))
            if absolute is None:
                continue
            dotted = absolute.split(".")
            top = dotted[0]
            if top == PACKAGE:
                # A whole subpackage: its subprocess helpers and siblings come along.
                targets = [dotted[1]] if len(dotted) > 1 else list(statement.names)
                for subpackage in targets:
                    queue.extend(_subpackage_files(subpackage))
            elif top and top not in sys.stdlib_module_names and top not in NOT_DISTRIBUTIONS:
                found.add(top)
    return found


def read_lock(path: Path = REPO / "requirements.lock") -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) for every `name==version` line."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"requirements.lock: {line!r} is not an exact pin")
        pins[canonicalize_name(requirement.name)] = (requirement.name, specs[0].version)
    return pins


def declared_extras(pyproject: Path = REPO / "pyproject.toml") -> dict[str, set[str]]:
    """Extras the project asks for in its own dependencies (llama-cpp-python[server])."""
    import tomllib

    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    extras: dict[str, set[str]] = {}
    for spec in data["project"]["dependencies"]:
        requirement = Requirement(spec)
        if requirement.extras:
            extras.setdefault(canonicalize_name(requirement.name), set()).update(requirement.extras)
    return extras


def distributions_of(modules: Iterable[str]) -> dict[str, set[str]]:
    """canonical distribution -> the modules it provides, for the installed distributions."""
    providers = metadata.packages_distributions()
    result: dict[str, set[str]] = {}
    for module in sorted(modules):
        names = providers.get(module)
        if not names:
            raise LookupError(f"no installed distribution provides the module {module!r}")
        for name in names:
            result.setdefault(canonicalize_name(name), set()).add(module)
    return result


def requirements_of(distribution: str, extras: Iterable[str] = ()) -> list[Requirement]:
    """What the installed distribution requires on this platform and Python (with the given extras)."""
    requires = metadata.distribution(distribution).requires or []
    wanted = {"", *extras}
    environment = default_environment()
    found = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in wanted
        ):
            continue
        found.append(requirement)
    return found


def needs_no_pin(requirement: Requirement) -> bool:
    """A dependency that needs no pin of ours: pinned exactly by its parent (torch's CUDA wheels), or one of the
    installer tools pip freeze leaves out of a lock."""
    exact = [spec for spec in requirement.specifier if spec.operator in ("==", "===")]
    return bool(exact) or canonicalize_name(requirement.name) in UNLOCKED_TOOLS


def closure(roots: Iterable[str], pins: dict[str, tuple[str, str]], extras: dict[str, set[str]]) -> set[str]:
    """The roots and everything they require transitively, each pinned by requirements.lock."""
    todo = [(root, frozenset(extras.get(root, ()))) for root in roots]
    done: dict[str, frozenset[str]] = {}
    unpinned = []
    while todo:
        name, wanted = todo.pop()
        if name in done and wanted <= done[name]:
            continue
        done[name] = done.get(name, frozenset()) | wanted
        for requirement in requirements_of(name, done[name]):
            dependency = canonicalize_name(requirement.name)
            if dependency in pins:
                todo.append((dependency, frozenset(requirement.extras)))
            elif not needs_no_pin(requirement):
                unpinned.append(f"{dependency} (needed by {name})")
    if unpinned:
        raise ValueError(f"requirements.lock does not pin {sorted(set(unpinned))}")
    return set(done)


def env_pins(scripts: Iterable[Path], env: str, pins: dict[str, tuple[str, str]]) -> list[str]:
    """Sorted `name==version` lines for one environment."""
    extras = declared_extras()
    roots = distributions_of(third_party_modules(scripts))
    unpinned = sorted(name for name in roots if name not in pins)
    if unpinned:
        raise ValueError(f"workflow/envs/{env}.yaml: the code imports {unpinned}, which requirements.lock does not pin")
    runtime = [canonicalize_name(name) for name in RUNTIME_ONLY.get(env, []) if canonicalize_name(name) in pins]
    names = closure([*roots, *runtime], pins, extras)
    lines = []
    for name in sorted(names, key=lambda n: pins[n][0].lower()):
        written, version = pins[name]
        extra = f"[{','.join(sorted(extras[name]))}]" if name in extras else ""
        lines.append(f"{written}{extra}=={version}")
    return lines


def render(env: str, rules: dict[str, Path | None], pip_lines: list[str]) -> str:
    purpose = PURPOSE.get(env, "the rules below")
    header = [
        f"# Conda environment for {purpose}.",
        "# Written by workflow/envs/update_envs.py from the rules' code and requirements.lock: do not edit by hand.",
        '# Used with `snakemake --sdm conda` (see README, "Scaling out"); the default run uses .venv instead.',
        f"# Rules: {', '.join(sorted(rules))}.",
    ]
    body = [
        "channels:",
        *(f"  - {channel}" for channel in CHANNELS),
        "dependencies:",
        f"  - python={PYTHON}",
        f"  - pip={PIP}",
        "  - pip:",
        *(f"      - {line}" for line in pip_lines),
    ]
    return "\n".join(header + body) + "\n"


def expected_files() -> dict[Path, str]:
    pins = read_lock()
    files = {}
    for env, rules in sorted(rules_by_env().items()):
        scripts = [script for script in rules.values() if script is not None]
        files[ENVS / f"{env}.yaml"] = render(env, rules, env_pins(scripts, env, pins))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        print(
            "out of date (run .venv/bin/python workflow/envs/update_envs.py): "
            + ", ".join(str(p.relative_to(REPO)) for p in stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
