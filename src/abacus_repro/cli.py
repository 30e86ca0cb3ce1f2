"""`abacus-repro`: the commands a person runs by hand.

Each stage module that has commands exposes ``register(subparsers)``; the subcommand it adds stores its
handler in ``func``. Stage modules are imported only when listed here, so a broken optional stage cannot
break the others' commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import InputError

STAGE_COMMANDS = [
    "abacus_repro.code.cli",
    "abacus_repro.text.cli",
    "abacus_repro.sandbox.cli",
    "abacus_repro.evaluate.cli",
    "abacus_repro.export.cli",
    "abacus_repro.provenance.cli",
    "abacus_repro.pretrain.cli",
    "abacus_repro.plan",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abacus-repro", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in STAGE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; an InputError anywhere (a stage's import, an argument's type, the command itself) is
    one line ``abacus-repro: error: <file>: <what>`` and exit status 2, without a traceback."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"abacus-repro: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
